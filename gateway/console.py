"""The operator console under /console: log-in, the live intake, cases, dashboard, outbox.

A sub-application with its own middleware: every page needs a live session, every form
a CSRF token, and every response is `no-store` so no identity stays in a browser cache.
The live intake is a server-sent event stream fed by the store job's results channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import io
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import console_charts, console_data
from gateway.app import SERVICES, Services
from gateway.auth import (
    COOKIE,
    LOGIN_COOKIE,
    SessionData,
    SessionStore,
    authenticate,
    may,
)
from gateway.i18n import CONSOLE_STRINGS
from workers import cases, models
from workers.cases import Actor, CaseActionError
from workers.context import RESULTS_CHANNEL, Context, results_of
from workers.replies import enqueue_deliveries

log = logging.getLogger("aduan.console")

PING_SECONDS = 15
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Current:
    """The operator behind a request, with their session."""

    session: SessionData
    operator_id: int
    username: str
    role: str

    @property
    def lang(self) -> str:
        return self.session.lang

    @property
    def actor(self) -> Actor:
        return Actor(self.username, self.role, self.operator_id)

    def may(self, permission: str) -> bool:
        return may(self.role, permission)


class ConsoleError(Exception):
    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status = status
        self.key = key


class LiveFeed:
    """One subscription to the store's results per process, fanned out to every open
    intake page. A slow page drops events rather than hold the others up."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=200)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(queue)

    async def close(self) -> None:
        self._closing = True
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5)

    def _fan_out(self, outcome: dict[str, Any]) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(outcome)

    async def _listen(self) -> None:
        while not self._closing:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(RESULTS_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        with contextlib.suppress(ValueError):
                            for outcome in results_of(message["data"]):
                                if outcome.get("ticket") and outcome.get("outcome") in (
                                    "new",
                                    "followup",
                                ):
                                    self._fan_out(outcome)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._closing:
                    return
                log.warning("live feed subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)


@dataclass
class Console:
    services: Services
    sessions: SessionStore
    feed: LiveFeed
    context: Context
    zone: ZoneInfo
    secure_cookies: bool
    streams: set[web.StreamResponse] = field(default_factory=set)

    async def read(self, fn: Callable[[Session], Any]) -> Any:
        return await self.services.read_db(fn)

    async def write(self, fn: Callable[[Session], Any]) -> Any:
        def run() -> Any:
            with self.services.sessions() as session, session.begin():
                return fn(session)

        return await asyncio.to_thread(run)

    def view(self, lang: str) -> console_data.View:
        return console_data.View(
            lang=lang,
            strings=CONSOLE_STRINGS[lang],
            taxonomy=self.services.taxonomy,
            replies=self.services.replies,
            zone=self.zone,
            sla_days=self.services.settings.sla_verify_days,
        )

    async def enqueue(self, ids: list[int]) -> bool:
        """Hand committed deliveries to the reply job; False if the queue is down."""
        if not ids:
            return True
        try:
            await asyncio.to_thread(enqueue_deliveries, self.context, ids)
        except Exception as exc:
            log.warning("could not queue deliveries %s: %s", ids, type(exc).__name__)
            return False
        return True


CONSOLE = web.AppKey("console", Console)
CURRENT = web.RequestKey("console_operator", Current)


def _console(request: web.Request) -> Console:
    return request.config_dict[CONSOLE]


def _lang_of(request: web.Request, current: Current | None) -> str:
    wanted = request.query.get("lang")
    if wanted in CONSOLE_STRINGS:
        return wanted
    return current.lang if current is not None else "id"


def _render(
    request: web.Request,
    template: str,
    current: Current | None,
    status: int = 200,
    **context: Any,
) -> web.Response:
    console = _console(request)
    lang = _lang_of(request, current)
    html = console.services.templates.get_template(f"console/{template}").render(
        lang=lang,
        t=CONSOLE_STRINGS[lang],
        current=current,
        csrf=current.session.csrf if current else "",
        path=request.path,
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html")


def _login_redirect(request: web.Request, expired: bool) -> NoReturn:
    target = request.path_qs if request.method == "GET" else "/console/"
    query = {"next": target}
    if expired:
        query["expired"] = "1"
    raise web.HTTPSeeOther("/console/login?" + urlencode(query))


async def require(request: web.Request, permission: str, *, touch: bool = True) -> Current:
    """The operator behind the request, allowed to do `permission`; CSRF-checked on POST."""
    console = _console(request)
    cookie = request.cookies.get(COOKIE)
    token = console.sessions.token_of(cookie)
    data = await console.sessions.load(token, touch=touch)
    if data is None:
        if request.path == "/console/events":
            raise ConsoleError(401, "err_session")
        _login_redirect(request, expired=cookie is not None)
    operator = await console.read(lambda s: s.get(models.Operator, data.operator_id))
    if operator is None or not operator.active:
        await console.sessions.delete(data.token)
        _login_redirect(request, expired=False)
    current = Current(data, operator.id, operator.username, operator.role)
    wanted = request.query.get("lang")
    if request.method == "GET" and wanted in CONSOLE_STRINGS and wanted != data.lang:
        await console.sessions.set_lang(data.token, wanted)
        current = Current(
            SessionData(data.token, data.operator_id, data.csrf, wanted, data.created),
            operator.id,
            operator.username,
            operator.role,
        )
    request[CURRENT] = current
    if request.method == "POST":
        form = await request.post()
        sent = form.get("csrf")
        if not isinstance(sent, str) or not _same(sent, data.csrf):
            raise ConsoleError(403, "err_csrf")
    if not current.may(permission):
        raise ConsoleError(403, "err_forbidden")
    return current


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@web.middleware
async def console_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ConsoleError as exc:
        current = request.get(CURRENT)
        t = CONSOLE_STRINGS[_lang_of(request, current)]
        response = _render(request, "error.html", current, status=exc.status, message=t[exc.key])
    if not response.prepared:
        response.headers["Cache-Control"] = "no-store"
    return response


# Log-in and log-out


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console/"


async def login_page(
    request: web.Request, *, status: int = 200, error: str | None = None
) -> web.Response:
    console = _console(request)
    login_token = secrets.token_urlsafe(24)
    response = _render(
        request,
        "login.html",
        None,
        status=status,
        login_csrf=console.sessions.login_csrf(login_token),
        next=_safe_next(request.query.get("next") or None),
        expired=request.query.get("expired") == "1",
        error=error,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        console.sessions.cookie_value(login_token),
        path="/console/login",
        httponly=True,
        samesite="Strict",
        secure=console.secure_cookies,
        max_age=3600,
    )
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    console = _console(request)
    form = await request.post()
    login_token = console.sessions.token_of(request.cookies.get(LOGIN_COOKIE))
    sent = form.get("csrf")
    if (
        login_token is None
        or not isinstance(sent, str)
        or not _same(sent, console.sessions.login_csrf(login_token))
    ):
        raise ConsoleError(403, "err_csrf")
    username = str(form.get("username") or "")[:64]
    password = str(form.get("password") or "")[:1024]
    lang = _lang_of(request, None)
    t = CONSOLE_STRINGS[lang]
    if await console.sessions.too_many_failures(username, request.remote):
        return await login_page(request, status=429, error=t["login_throttled"])

    def check(session: Session) -> tuple[int, str] | None:
        operator = authenticate(session, username, password)
        if operator is None:
            return None
        operator.last_login_at = datetime.now(UTC)
        cases.audit(session, Actor(operator.username, operator.role, operator.id), "login")
        return operator.id, operator.username

    found = await console.write(check) if username and password else None
    if found is None:
        await console.sessions.failed(username, request.remote)
        log.warning("console log-in failed from %s", request.remote)
        return await login_page(request, status=401, error=t["login_failed"])
    await console.sessions.succeeded(username, request.remote)
    data = await console.sessions.create(found[0], lang)
    log.info("%s logged in to the console", found[1])
    response = web.HTTPSeeOther(_safe_next(str(form.get("next") or "")))
    response.set_cookie(
        COOKIE,
        console.sessions.cookie_value(data.token),
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=console.secure_cookies,
    )
    response.del_cookie(LOGIN_COOKIE, path="/console/login")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    current = await require(request, "view")
    console = _console(request)
    await console.sessions.delete(current.session.token)
    await console.write(lambda s: cases.audit(s, current.actor, "logout"))
    response = web.HTTPSeeOther("/console/login")
    response.del_cookie(COOKIE, path="/console")
    raise response


# The intake


def _page_number(request: web.Request) -> int:
    try:
        return max(1, min(int(request.query.get("page", "1")), 10_000))
    except ValueError:
        return 1


async def intake_page(request: web.Request) -> web.Response:
    current = await require(request, "view")
    console = _console(request)
    view = console.view(current.lang)
    filters = console_data.Filters.parse(request.query, console.services.taxonomy)
    page = _page_number(request)
    data = await console.read(lambda s: console_data.intake(s, view, filters, page))
    query = filters.query()
    return _render(
        request,
        "intake.html",
        current,
        data=data,
        filters=filters,
        query=query,
        events_url="/console/events" + ("?" + urlencode(query) if query else ""),
        channels=console_data.CHANNELS,
        topics=[(t.code, view.topic_name(t.code)) for t in console.services.taxonomy.topics],
        statuses=[(s, view.status_name(s)) for s in models.STATUSES],
        sla_days=console.services.settings.sla_verify_days,
        urlencode=urlencode,
    )


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each new case that passes the page's filters, as data to be
    written into the page with textContent (never as markup)."""
    current = await require(request, "view", touch=False)
    console = _console(request)
    filters = console_data.Filters.parse(request.query, console.services.taxonomy)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue = console.feed.subscribe()
    console.streams.add(response)
    try:
        await response.write(b"retry: 2000\nevent: ready\ndata: {}\n\n")
        while True:
            try:
                outcome = await asyncio.wait_for(queue.get(), PING_SECONDS)
            except TimeoutError:
                alive = await console.sessions.load(current.session.token, touch=False)
                if alive is None:
                    await response.write(b"event: expired\ndata: {}\n\n")
                    break
                await response.write(b": ping\n\n")
                continue
            if outcome is None:
                break
            view = console.view(current.lang)
            ticket = str(outcome["ticket"])

            def row(
                session: Session, ticket: str = ticket, view: console_data.View = view
            ) -> dict[str, Any] | None:
                case_id = session.scalar(select(models.Case.id).where(models.Case.ticket == ticket))
                if case_id is None:
                    return None
                return console_data.intake_row(session, view, filters, case_id)

            found = await console.read(row)
            if found is not None:
                found["outcome"] = outcome.get("outcome")
                payload = json.dumps(found, ensure_ascii=False)
                await response.write(f"event: case\ndata: {payload}\n\n".encode())
    except (ConnectionResetError, RuntimeError):
        pass  # the page went away
    finally:
        console.feed.unsubscribe(queue)
        console.streams.discard(response)
    return response


# A case


def _case_id(request: web.Request) -> int:
    try:
        return int(request.match_info["case_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


async def _case_page(
    request: web.Request,
    current: Current,
    case_id: int,
    *,
    status: int = 200,
    error: str | None = None,
    done: str | None = None,
    revealed: dict[str, Any] | None = None,
) -> web.Response:
    console = _console(request)
    view = console.view(current.lang)
    case = await console.read(lambda s: console_data.case_detail(s, view, case_id))
    if case is None:
        raise ConsoleError(404, "err_not_found")
    return _render(
        request,
        "case.html",
        current,
        status=status,
        case=case,
        error=error,
        done=done,
        revealed=revealed,
        statuses=[(s, view.status_name(s)) for s in cases.SETTABLE],
        topics=[(t.code, view.topic_name(t.code)) for t in console.services.taxonomy.topics],
        terminal=cases.TERMINAL,
        next_status=cases.NEXT,
        notified=cases.NOTIFIED,
        reply_limit=cases.REPLY_LIMIT,
        reason_min=cases.REASON_MIN,
    )


async def case_page(request: web.Request) -> web.Response:
    current = await require(request, "view")
    done = request.query.get("done")
    t = CONSOLE_STRINGS[current.lang]
    message = t.get(f"done_{done}") if done else None
    return await _case_page(request, current, _case_id(request), done=message)


def _error_text(current: Current, exc: CaseActionError) -> str:
    t = CONSOLE_STRINGS[current.lang]
    return t.get(f"err_{exc.code}", exc.code).format(**exc.values)


async def _act(
    request: web.Request,
    permission: str,
    action: Callable[[Session, Current, Any], tuple[str, list[int]]],
) -> web.StreamResponse:
    """Run one case action in a transaction; then queue what it has to send."""
    current = await require(request, permission)
    console = _console(request)
    case_id = _case_id(request)
    form = await request.post()
    try:
        done, ids = await console.write(lambda s: action(s, current, form))
    except CaseActionError as exc:
        if exc.code == "not_found":
            raise ConsoleError(404, "err_not_found") from None
        if exc.status == 403:
            raise ConsoleError(403, "err_forbidden") from None
        return await _case_page(
            request, current, case_id, status=exc.status, error=_error_text(current, exc)
        )
    if not await console.enqueue(ids):
        done = "queue_down"
    raise web.HTTPSeeOther(f"/console/cases/{case_id}?done={done}")


def _text(form: Any, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def change_status(request: web.Request) -> web.StreamResponse:
    case_id = _case_id(request)
    services = request.config_dict[SERVICES]

    def action(session: Session, current: Current, form: Any) -> tuple[str, list[int]]:
        _, ids = cases.change_status(
            session,
            services.replies,
            case_id,
            current.actor,
            _text(form, "status", 20),
            _text(form, "note"),
            expected=_text(form, "expected", 20) or None,
            may_reopen=current.may("reopen"),
        )
        return ("status_notified" if ids else "status"), ids

    return await _act(request, "act", action)


async def reply(request: web.Request) -> web.StreamResponse:
    case_id = _case_id(request)
    services = request.config_dict[SERVICES]

    def action(session: Session, current: Current, form: Any) -> tuple[str, list[int]]:
        _, delivery_id = cases.reply(
            session, services.replies, case_id, current.actor, _text(form, "text", 10_000)
        )
        return "reply", [delivery_id]

    return await _act(request, "act", action)


async def topic(request: web.Request) -> web.StreamResponse:
    case_id = _case_id(request)
    codes = request.config_dict[SERVICES].taxonomy.codes

    def action(session: Session, current: Current, form: Any) -> tuple[str, list[int]]:
        cases.reassign_topic(
            session, codes, case_id, current.actor, _text(form, "topic", 64), _text(form, "note")
        )
        return "topic", []

    return await _act(request, "act", action)


async def merge(request: web.Request) -> web.StreamResponse:
    case_id = _case_id(request)

    def action(session: Session, current: Current, form: Any) -> tuple[str, list[int]]:
        cases.merge(session, case_id, current.actor, _text(form, "into", 40), _text(form, "note"))
        return "merge", []

    return await _act(request, "act", action)


async def unlink(request: web.Request) -> web.StreamResponse:
    case_id = _case_id(request)

    def action(session: Session, current: Current, form: Any) -> tuple[str, list[int]]:
        cases.unlink(session, case_id, current.actor, _text(form, "note"))
        return "unlink", []

    return await _act(request, "unlink", action)


async def reveal(request: web.Request) -> web.StreamResponse:
    """Only an integrity officer, only with a reason, only in this one response."""
    console = _console(request)
    case_id = _case_id(request)
    try:
        current = await require(request, "reveal")
    except ConsoleError as exc:
        denied = request.get(CURRENT)
        if exc.key == "err_forbidden" and isinstance(denied, Current):
            log.warning("%s (%s) was refused a reveal", denied.username, denied.role)

            def refused(session: Session) -> None:
                if session.get(models.Case, case_id) is not None:
                    cases.audit(session, denied.actor, "reveal_denied", case_id)

            await console.write(refused)
        raise
    form = await request.post()
    try:
        identity = await console.write(
            lambda s: cases.reveal(
                s, console.services.crypto, case_id, current.actor, _text(form, "reason")
            )
        )
    except CaseActionError as exc:
        if exc.code == "not_found":
            raise ConsoleError(404, "err_not_found") from None
        return await _case_page(
            request, current, case_id, status=exc.status, error=_error_text(current, exc)
        )
    return await _case_page(request, current, case_id, revealed=identity)


async def attachment(request: web.Request) -> web.Response:
    await require(request, "view")
    console = _console(request)
    try:
        attachment_id = int(request.match_info["attachment_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    found = await console.read(lambda s: s.get(models.Attachment, attachment_id))
    if found is None or found.data is None:
        raise ConsoleError(404, "err_not_found")
    content_type = found.content_type if found.content_type in IMAGE_TYPES else None
    name = _SAFE_FILENAME.sub("_", found.filename or f"attachment-{found.id}")[:100]
    disposition = "inline" if content_type else "attachment"
    return web.Response(
        body=found.data,
        content_type=content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


# Dashboard, outbox, export


async def dashboard(request: web.Request) -> web.Response:
    current = await require(request, "view")
    console = _console(request)
    view = console.view(current.lang)
    t = CONSOLE_STRINGS[current.lang]
    data = await console.read(lambda s: console_data.dashboard(s, view))
    return _render(
        request,
        "dashboard.html",
        current,
        data=data,
        per_day_chart=console_charts.stacked_days(
            data["days"], data["per_day"], t["chart_per_day"], t["chart_empty"]
        ),
        per_topic_chart=console_charts.horizontal_bars(
            data["per_topic"], t["chart_per_topic"], t["chart_empty"]
        ),
        per_status_chart=console_charts.horizontal_bars(
            data["by_status"], t["chart_per_status"], t["chart_empty"]
        ),
        days=console_data.DASHBOARD_DAYS,
    )


async def outbox(request: web.Request) -> web.Response:
    current = await require(request, "view")
    console = _console(request)
    view = console.view(current.lang)
    status = request.query.get("status", "outbox")
    if status not in console_data.OUTBOX_STATUSES:
        status = "outbox"
    rows = await console.read(lambda s: console_data.outbox(s, view, status))
    return _render(
        request,
        "outbox.html",
        current,
        rows=rows,
        shown=status,
        statuses=console_data.OUTBOX_STATUSES,
    )


def _csv_cell(value: str) -> str:
    # A spreadsheet runs a cell that starts like a formula; complaint text is untrusted.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def export(request: web.Request) -> web.Response:
    current = await require(request, "export")
    console = _console(request)
    view = console.view(current.lang)
    filters = console_data.Filters.parse(request.query, console.services.taxonomy)

    def rows(session: Session) -> list[list[str]]:
        found = console_data.export_rows(session, view, filters)
        cases.audit(
            session,
            current.actor,
            "export",
            detail={"filters": filters.query(), "rows": len(found) - 1},
        )
        return found

    table = await console.write(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    for line in table:
        writer.writerow([_csv_cell(cell) for cell in line])
    stamp = datetime.now(console.zone).strftime("%Y%m%d-%H%M")
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="aduan-{stamp}.csv"'},
    )


def setup(app: web.Application) -> None:
    services = app[SERVICES]
    settings = services.settings
    console_app = web.Application(middlewares=[console_middleware])
    console = Console(
        services=services,
        sessions=SessionStore(
            services.intake.redis, settings.secret_key, settings.session_idle_minutes * 60
        ),
        feed=LiveFeed(services.intake.redis),
        context=Context(settings, services.redis_url),
        zone=ZoneInfo(settings.timezone),
        secure_cookies=settings.public_url.startswith("https://"),
    )
    console_app[CONSOLE] = console

    async def on_startup(_app: web.Application) -> None:
        console.feed.start()

    async def on_shutdown(_app: web.Application) -> None:
        await console.feed.close()  # ends every open event stream

    async def on_cleanup(_app: web.Application) -> None:
        if "redis" in console.context.__dict__:
            console.context.redis.close()

    console_app.on_startup.append(on_startup)
    console_app.on_shutdown.append(on_shutdown)
    console_app.on_cleanup.append(on_cleanup)
    routes = console_app.router
    routes.add_get("/", intake_page)
    routes.add_get("/login", login_page)
    routes.add_post("/login", login_submit)
    routes.add_post("/logout", logout)
    routes.add_get("/events", events)
    routes.add_get("/cases/{case_id}", case_page)
    routes.add_post("/cases/{case_id}/status", change_status)
    routes.add_post("/cases/{case_id}/reply", reply)
    routes.add_post("/cases/{case_id}/topic", topic)
    routes.add_post("/cases/{case_id}/merge", merge)
    routes.add_post("/cases/{case_id}/unlink", unlink)
    routes.add_post("/cases/{case_id}/reveal", reveal)
    routes.add_get("/attachments/{attachment_id}", attachment)
    routes.add_get("/dashboard", dashboard)
    routes.add_get("/outbox", outbox)
    routes.add_get("/export.csv", export)

    async def bare(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/console/")

    app.router.add_get("/console", bare)  # before the sub-app, which would answer 404
    app.add_subapp("/console", console_app)
