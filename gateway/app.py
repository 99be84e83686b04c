"""The aiohttp application: routes, middlewares, and the services they share."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

import channels.registry  # noqa: F401 - registers the channel adapters
from channels.base import ChannelError
from config.data import Replies, load_replies, load_taxonomy
from config.settings import Settings
from gateway import metrics
from gateway.intake import Intake
from gateway.spool import Spool
from normalizer import Rules
from normalizer.topics import Taxonomy
from workers.crypto import Crypto
from workers.db import make_engine, session_factory

log = logging.getLogger("aduan.http")

MAX_BODY_BYTES = 4 * 1024 * 1024  # Meta batches reach 3 MB; aiohttp's default is 1 MiB


@dataclass
class Services:
    settings: Settings
    redis_url: str
    taxonomy: Taxonomy
    replies: Replies
    rules: Rules
    intake: Intake
    engine: Engine
    sessions: sessionmaker[Session]
    crypto: Crypto
    templates: jinja2.Environment

    async def read_db(self, fn: Callable[[Session], Any]) -> Any:
        def run() -> Any:
            with self.sessions() as session:
                return fn(session)

        return await asyncio.to_thread(run)


SERVICES = web.AppKey("services", Services)


def build_services(settings: Settings, redis_url: str) -> Services:
    taxonomy = load_taxonomy(settings.topics_file)
    rules = Rules(taxonomy, settings.ticket_prefix, settings.default_region)
    engine = make_engine(settings.effective_database_url)
    crypto = Crypto(settings.encryption_keys, settings.secret_key)
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("gateway").joinpath("templates"))),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return Services(
        settings=settings,
        redis_url=redis_url,
        taxonomy=taxonomy,
        replies=load_replies(settings.replies_file),
        rules=rules,
        intake=Intake(
            redis_url,
            rules,
            settings.queue_name,
            Spool(settings.data_dir / "spool"),
            settings.rate_limits,
            crypto,
        ),
        engine=engine,
        sessions=session_factory(engine),
        crypto=crypto,
        templates=templates,
    )


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def json_error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.json_response(ChannelError(status, code, message, field).as_json(), status=status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ChannelError as exc:
        if 400 <= exc.status < 500:
            metrics.REJECTED.labels(request.path.split("/")[1] or "form", str(exc.status)).inc()
        if wants_json(request):
            response = json_error(exc.status, exc.code, exc.message, exc.field)
        else:
            response = web.Response(status=exc.status, text=exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, "too_large", "The request body is too large.")
    except web.HTTPException as exc:
        if wants_json(request) and exc.status >= 400:
            return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json(request):
            return json_error(500, "internal", "Something went wrong on our side.")
        return web.Response(status=500, text="Something went wrong on our side.")


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.content_type == "text/html":
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    try:
        await services.intake.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"

    def db(session: Session) -> None:
        session.execute(text("SELECT 1"))

    try:
        await services.read_db(db)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    spool = services.intake.spool
    depth = await asyncio.to_thread(spool.depth) if spool is not None else 0
    return web.Response(
        status=200 if ready else 503,
        text=json.dumps({"ready": ready, "checks": checks, "spool_depth": depth}),
        content_type="application/json",
    )


async def metrics_view(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from rq.registry import FailedJobRegistry

    intake = request.app[SERVICES].intake
    if intake.spool is not None:
        metrics.SPOOL_DEPTH.set(await asyncio.to_thread(intake.spool.depth))

    def queue_figures() -> tuple[int, int]:
        registry = FailedJobRegistry(queue=intake.queue)
        return intake.queue.count, registry.count

    try:
        depth, failed = await asyncio.to_thread(queue_figures)
        metrics.QUEUE_DEPTH.set(depth)
        metrics.FAILED_JOBS.set(failed)
    except Exception:  # Redis down: the spool gauge above still tells the story
        log.warning("queue figures unavailable for /metrics")
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(services: Services) -> web.Application:
    from gateway import web_routes, webhooks

    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[security_headers, errors_middleware]
    )
    app[SERVICES] = services

    async def on_startup(app: web.Application) -> None:
        await services.intake.start()

    async def on_cleanup(app: web.Application) -> None:
        await services.intake.close()
        services.engine.dispose()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    web_routes.setup(app)
    webhooks.setup(app)
    from gateway import console

    console.setup(app)
    app.router.add_static("/static", str(resources.files("gateway").joinpath("static")))
    return app
