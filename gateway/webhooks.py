"""Provider webhooks: Twilio (SMS, WhatsApp, status callbacks) and the WhatsApp Cloud API.

Every request is checked against the provider's signature before anything is read from
it, and acknowledged only once what it carries is durably queued: providers do not retry
a slow answer, so an acknowledged message must never be one we could still lose.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from rq import Retry
from twilio.twiml.messaging_response import MessagingResponse

from channels.base import ChannelError, InboundMessage, RawRequest, adapter
from channels.meta import MetaAdapter
from channels.sms import Receipt
from channels.twilio import TwilioAdapter
from config.settings import Settings
from gateway.app import SERVICES, Services
from gateway.intake import QueueUnavailable
from gateway.web_routes import read_limited, request_url

log = logging.getLogger("aduan.webhooks")

SUBMIT_CONCURRENCY = 32
FORM_LIMIT = 64 * 1024  # a Twilio webhook with ten media URLs is a few KB
RECEIPTS_JOB = "workers.receipts.apply_receipts"
RECEIPTS_RETRY = Retry(max=5, interval=[1, 5, 30, 120, 600])
EMPTY_TWIML = str(MessagingResponse())
TWILIO = web.AppKey("twilio_adapter", TwilioAdapter)
META = web.AppKey("meta_adapter", MetaAdapter)


def _first(value: str | None) -> str | None:
    """The client-side value of a header that each proxy on the way appended to."""
    if not value:
        return None
    return value.split(",")[0].strip() or None


def signature_urls(request: web.Request, public_url: str) -> list[str]:
    """The URLs the provider may have signed, the configured public one first.

    Behind a proxy that terminates TLS or rewrites the host, the request aduan sees is not
    the one the provider made; X-Forwarded-Proto/Host say what it was. The configured
    ADUAN_PUBLIC_URL (with any path prefix it has) is tried first.
    """
    path = request.raw_path  # as sent, query string and percent-encoding intact
    public = urlsplit(public_url)
    prefix = public.path.rstrip("/")
    urls = [f"{public.scheme}://{public.netloc}{prefix}{path}"]
    proto = _first(request.headers.get("X-Forwarded-Proto")) or request.scheme
    host = _first(request.headers.get("X-Forwarded-Host")) or request.headers.get("Host")
    if host and proto in ("http", "https"):
        forwarded = f"{proto}://{host}{prefix}{path}"
        if forwarded not in urls:
            urls.append(forwarded)
    return urls


def _unconfigured(name: str, setting: str) -> ChannelError:
    return ChannelError(
        403,
        "not_configured",
        f"{name} webhooks are refused: set {setting} to check their signatures "
        "(or ADUAN_INSECURE_WEBHOOKS=true, in development only).",
    )


async def _read_form(request: web.Request) -> RawRequest:
    if request.content_type != "application/x-www-form-urlencoded":
        raise ChannelError(
            415, "unsupported_media_type", "Twilio webhooks are application/x-www-form-urlencoded."
        )
    if request.content_length is not None and request.content_length > FORM_LIMIT:
        raise ChannelError(413, "too_large", f"The body may be at most {FORM_LIMIT // 1024} KB.")
    body = await read_limited(request, FORM_LIMIT)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=500
        )
    except UnicodeDecodeError:
        raise ChannelError(400, "invalid_body", "The form is not UTF-8.") from None
    except ValueError:
        raise ChannelError(400, "invalid_body", "The form has too many fields.") from None
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return RawRequest(
        method=request.method,
        url=request_url(request),
        headers=dict(request.headers),
        body=body,
        form=form,
        remote=request.remote,
    )


async def _twilio_request(request: web.Request) -> tuple[Services, RawRequest]:
    services = request.app[SERVICES]
    settings = services.settings
    raw = await _read_form(request)
    if not settings.insecure_webhooks:
        if not settings.twilio_auth_token:
            raise _unconfigured("Twilio", "ADUAN_TWILIO_AUTH_TOKEN")
        urls = signature_urls(request, settings.public_url)
        request.app[TWILIO].verify(raw, settings.twilio_auth_token, urls)
    return services, raw


async def _submit(services: Services, messages: Sequence[InboundMessage]) -> int:
    """Queue each message durably; one that cannot be normalised does not hold up the rest.

    Returns how many were queued (or were already). Raises 503 if the queue is down, so
    the provider tries again later rather than hear that the messages are safe.
    """
    if len(messages) == 1:
        # Nearly every webhook carries one message: no task and no semaphore for it.
        try:
            results: list[object] = [await services.intake.submit(messages)]
        except Exception as exc:
            results = [exc]
    else:
        # A 3 MB batch holds a thousand messages: a Redis connection each at once would
        # not do.
        slots = asyncio.Semaphore(SUBMIT_CONCURRENCY)

        async def submit(message: InboundMessage) -> object:
            async with slots:
                return await services.intake.submit([message])

        results = await asyncio.gather(*(submit(m) for m in messages), return_exceptions=True)
    queued = 0
    refused: ChannelError | None = None
    for result in results:
        if isinstance(result, QueueUnavailable):
            raise ChannelError(
                503, "unavailable", "The message could not be queued; please try again."
            )
        if isinstance(result, ChannelError):
            log.warning("refused a message: %s (%s)", result.code, result.field or "-")
            if refused is None or result.status == 429:
                refused = result
        elif isinstance(result, BaseException):
            raise result
        else:
            queued += 1
    # A sender over its rate limit may be let in later: refuse the request so the
    # provider retries it (what was queued now is a duplicate then). Bad input is dropped.
    if refused is not None and (queued == 0 or refused.status == 429):
        raise refused
    return queued


async def _enqueue_receipts(services: Services, receipts: Sequence[Receipt]) -> None:
    if not receipts:
        return
    items = [receipt.to_dict() for receipt in receipts]
    try:
        await asyncio.to_thread(
            services.intake.queue.enqueue,
            RECEIPTS_JOB,
            items,
            job_id=f"receipts-{uuid.uuid4().hex}",
            retry=RECEIPTS_RETRY,
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
            description=f"apply {len(items)} delivery receipt(s)",
        )
    except Exception as exc:
        log.warning("could not queue delivery receipts: %s", type(exc).__name__)
        raise ChannelError(
            503, "unavailable", "The status could not be queued; please try again."
        ) from None


def _twiml() -> web.Response:
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def twilio_incoming(request: web.Request) -> web.Response:
    services, raw = await _twilio_request(request)
    await _submit(services, request.app[TWILIO].parse(raw))
    return _twiml()


async def twilio_status(request: web.Request) -> web.Response:
    services, raw = await _twilio_request(request)
    await _enqueue_receipts(services, request.app[TWILIO].receipts(raw))
    return web.Response(status=204)


async def whatsapp_handshake(request: web.Request) -> web.Response:
    settings = request.app[SERVICES].settings
    if not settings.meta_verify_token:
        raise _unconfigured("WhatsApp Cloud API", "ADUAN_META_VERIFY_TOKEN")
    challenge = request.app[META].handshake(request.query, settings.meta_verify_token)
    return web.Response(text=challenge, content_type="text/plain")


async def whatsapp_incoming(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    body = await request.read()  # bounded by the app's client_max_size (4 MB)
    raw = RawRequest(
        method=request.method,
        url=request_url(request),
        headers=dict(request.headers),
        body=body,
        remote=request.remote,
    )
    meta = request.app[META]
    if not settings.insecure_webhooks:
        if not settings.meta_app_secret:
            raise _unconfigured("WhatsApp Cloud API", "ADUAN_META_APP_SECRET")
        meta.verify(raw, settings.meta_app_secret)
    notifications = meta.notifications(raw)
    queued = await _submit(services, notifications.messages) if notifications.messages else 0
    await _enqueue_receipts(services, notifications.receipts)
    return web.json_response(
        {
            "messages": queued,
            "statuses": len(notifications.receipts),
            "ignored": notifications.ignored,
            "skipped": notifications.skipped + len(notifications.messages) - queued,
        }
    )


def warn_if_insecure(settings: Settings) -> None:
    if settings.insecure_webhooks:
        log.warning(
            "ADUAN_INSECURE_WEBHOOKS is on: provider signatures are NOT checked; "
            "anyone can post fake messages. Development only."
        )


def setup(app: web.Application) -> None:
    twilio, meta = adapter("twilio"), adapter("meta")
    assert isinstance(twilio, TwilioAdapter) and isinstance(meta, MetaAdapter)
    app[TWILIO] = twilio
    app[META] = meta
    warn_if_insecure(app[SERVICES].settings)
    app.router.add_post("/webhooks/twilio", twilio_incoming)
    app.router.add_post("/webhooks/twilio/status", twilio_status)
    app.router.add_get("/webhooks/whatsapp", whatsapp_handshake)
    app.router.add_post("/webhooks/whatsapp", whatsapp_incoming)
