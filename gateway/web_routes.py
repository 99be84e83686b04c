"""The public web form, the tracking page and the app's JSON API."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.multipart import BadContentDispositionHeader

from channels.base import ChannelError, RawRequest, UploadedFile, adapter
from gateway.app import SERVICES, Services
from gateway.i18n import STRINGS, pick_language
from gateway.intake import IntakeResult, QueueUnavailable
from normalizer.tickets import parse_ticket
from workers.public import public_status

JSON_LIMIT = 256 * 1024
FIELD_LIMIT = 64 * 1024
FILE_LIMIT = 10 * 1024 * 1024
MULTIPART_LIMIT = 34 * 1024 * 1024
_REFERENCE = re.compile(r"^[0-9a-f]{40}$")


def _lang(request: web.Request) -> str:
    return pick_language(request.query.get("lang"), request.headers.get("Accept-Language"))


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    services = request.app[SERVICES]
    lang = context.pop("lang", None) or _lang(request)
    html = services.templates.get_template(template).render(
        lang=lang, t=STRINGS[lang], refresh=context.pop("refresh", None), **context
    )
    return web.Response(text=html, status=status, content_type="text/html")


def request_url(request: web.Request) -> str:
    """The URL as the gateway received it, for `RawRequest.url`. Put together from its
    parts: `str(request.url)` builds and re-encodes a yarl URL, a fiftieth of a webhook's
    time, for a value nothing checks (signatures use `signature_urls`)."""
    return f"{request.scheme}://{request.host}{request.raw_path}"


async def read_limited(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length <= limit:
        # The parser stops at Content-Length: the body cannot be longer than it says.
        try:
            return await request.content.readexactly(length) if length else b""
        except asyncio.IncompleteReadError:
            raise ChannelError(
                400, "incomplete_body", "The request body is shorter than its Content-Length."
            ) from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ChannelError(
                413, "too_large", f"The request body may be at most {limit // 1024} KB."
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ChannelError(
                413, "too_large", f"'{what}' may be at most {limit // (1024 * 1024) or 1} MB.", what
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def raw_request(request: web.Request) -> RawRequest:
    """The request as plain data, read within limits, for a channel adapter."""
    if request.content_length is not None and request.content_length > MULTIPART_LIMIT:
        raise ChannelError(413, "too_large", "The request body is too large.")
    content_type = request.content_type
    headers = dict(request.headers)
    base = RawRequest(
        method=request.method, url=request_url(request), headers=headers, remote=request.remote
    )
    if content_type == "application/json":
        body = await read_limited(request, JSON_LIMIT)
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ChannelError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None
        if data is None:
            raise ChannelError(400, "invalid_body", "The body must be a JSON object.")
        return replace(base, body=body, json=data)
    if content_type == "multipart/form-data":
        try:
            return await _read_multipart(request, base)
        # aiohttp: no boundary, a body without it, or (when warnings are errors) a
        # Content-Disposition it cannot read.
        except (ValueError, BadContentDispositionHeader) as exc:
            raise ChannelError(
                400, "invalid_multipart", f"Malformed multipart body: {exc}"
            ) from None
    if content_type == "application/x-www-form-urlencoded":
        try:
            post = await request.post()
        except UnicodeDecodeError:
            raise ChannelError(400, "invalid_encoding", "The form body is not UTF-8.") from None
        fields: dict[str, list[str]] = {}
        for key, item in post.items():
            if isinstance(item, str):
                fields.setdefault(key, []).append(item)
        return replace(base, form=fields)
    raise ChannelError(
        415,
        "unsupported_media_type",
        "Send application/json, multipart/form-data or application/x-www-form-urlencoded.",
    )


async def _read_multipart(request: web.Request, base: RawRequest) -> RawRequest:
    form: dict[str, list[str]] = {}
    files: list[UploadedFile] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is not None:
            data = await _read_part(part, FILE_LIMIT, part.name)
            files.append(
                UploadedFile(
                    part.name,
                    part.filename,
                    part.headers.get("Content-Type", "application/octet-stream"),
                    data,
                )
            )
        else:
            value = await _read_part(part, FIELD_LIMIT, part.name)
            try:
                form.setdefault(part.name, []).append(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise ChannelError(
                    400, "invalid", f"'{part.name}' is not UTF-8 text.", part.name
                ) from None
    return replace(base, form=form, files=files)


def _track_url(services: Services, ticket_or_ref: str) -> str:
    return f"{services.settings.public_url}/track/{ticket_or_ref}"


async def _submit(request: web.Request, raw: RawRequest) -> IntakeResult:
    services = request.app[SERVICES]
    await services.intake.check_ip_limit(request.remote)
    messages = adapter("web").parse(raw)
    topic_hint = messages[0].topic_hint
    if topic_hint is not None and topic_hint not in services.taxonomy.codes:
        raise ChannelError(
            400,
            "unknown_topic",
            f"'topic' must be one of: {', '.join(sorted(services.taxonomy.codes))}.",
            "topic",
        )
    try:
        [result] = await services.intake.submit(
            messages, wait=services.settings.ack_wait_seconds, content_check=True
        )
    except QueueUnavailable:
        raise ChannelError(
            503, "unavailable", "The complaint could not be saved right now; please try again."
        ) from None
    return result


async def api_create(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    raw = await raw_request(request)
    result = await _submit(request, raw)
    if result.ticket is None:
        return web.json_response(
            {
                "status": "queued",
                "reference": result.key,
                "track_url": _track_url(services, result.key),
            },
            status=202,
        )
    body: dict[str, Any] = {
        "ticket": result.ticket,
        "status": (result.outcome or {}).get("status") or "received",
        "track_url": _track_url(services, result.ticket),
    }
    if result.outcome and result.outcome.get("receipt"):
        body["receipt"] = result.outcome["receipt"]
    return web.json_response(body, status=201)


async def _status(request: web.Request, ticket: str, receipt: str | None) -> dict[str, Any]:
    services = request.app[SERVICES]
    ref = parse_ticket(ticket, services.settings.ticket_prefix)
    if ref is None:
        raise ChannelError(404, "not_found", "That is not a ticket number.", "ticket")
    if not ref.valid:
        raise ChannelError(
            404,
            "bad_check_digit",
            "Ticket not found: its check digit does not match; please check the number.",
            "ticket",
        )
    found = await services.read_db(
        lambda session: public_status(session, ref.canonical, services.crypto, receipt)
    )
    if found is None:
        raise ChannelError(404, "not_found", "Ticket not found; please check the number.", "ticket")
    return dict(found)


async def api_status(request: web.Request) -> web.Response:
    found = await _status(
        request, request.match_info["ticket"], request.headers.get("X-Receipt-Code")
    )
    return web.json_response(found)


def _form_values(raw: RawRequest | None) -> Mapping[str, str | None]:
    if raw is None:
        raw = RawRequest(method="GET", url="/", headers={})
    return {
        key: raw.field(key)
        for key in ("text", "topic", "name", "phone", "email", "address", "lat", "lon")
    }


async def form_page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return _render(
        request,
        "form.html",
        topics=services.taxonomy.topics,
        values=_form_values(None),
        error=None,
        form_token=secrets.token_urlsafe(24),
    )


async def form_submit(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    raw: RawRequest | None = None
    try:
        raw = await raw_request(request)
        if raw.field("form_token") is None:
            raw = replace(raw, form={**raw.form, "form_token": [secrets.token_urlsafe(24)]})
        result = await _submit(request, raw)
    except ChannelError as exc:
        return _render(
            request,
            "form.html",
            status=exc.status,
            topics=services.taxonomy.topics,
            values=_form_values(raw),
            error=exc,
            form_token=(raw.field("form_token") if raw else None) or secrets.token_urlsafe(24),
        )
    if result.ticket is None:
        raise web.HTTPSeeOther(f"/track/{result.key}?lang={_lang(request)}")
    return _render(
        request,
        "confirm.html",
        ticket=result.ticket,
        receipt=(result.outcome or {}).get("receipt"),
        track_url=f"/track/{result.ticket}?lang={_lang(request)}",
    )


async def track_page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    lang = _lang(request)
    ticket = request.match_info["ticket"]
    if _REFERENCE.match(ticket):
        outcome = await services.intake.lookup(ticket)
        if outcome and outcome.get("ticket"):
            raise web.HTTPSeeOther(f"/track/{outcome['ticket']}?lang={lang}")
        return _render(request, "pending.html", reference=ticket, refresh=3)
    receipt = None
    if request.method == "POST":
        receipt = str((await request.post()).get("receipt") or "") or None
    strings = STRINGS[lang]
    try:
        found = await _status(request, ticket, receipt)
    except ChannelError as exc:
        ref = parse_ticket(ticket, services.settings.ticket_prefix)
        if exc.code == "not_found" and ref is not None and "-R" in ref.canonical:
            return _render(
                request, "track.html", status=404 if receipt else 200, case=None, needs_receipt=True
            )
        heading, body = (
            (strings["bad_check_heading"], strings["bad_check_body"])
            if exc.code == "bad_check_digit"
            else (strings["not_found_heading"], strings["not_found_body"])
        )
        return _render(request, "error.html", status=404, heading=heading, body=body)
    topic = services.taxonomy.get(found["topic"])
    found["topic_name"] = topic.names.get(lang, topic.code) if topic else found["topic"]
    found["status_name"] = services.replies.status_name(lang, found["status"])
    for event in found["history"]:
        event["status_name"] = services.replies.status_name(lang, event["status"])
    return _render(request, "track.html", case=found, needs_receipt=False)


def setup(app: web.Application) -> None:
    app.router.add_get("/", form_page)
    app.router.add_post("/", form_submit)
    app.router.add_get("/track/{ticket}", track_page)
    app.router.add_post("/track/{ticket}", track_page)
    app.router.add_post("/api/v1/complaints", api_create)
    app.router.add_get("/api/v1/complaints/{ticket}", api_status)
