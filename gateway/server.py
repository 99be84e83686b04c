"""`aduan serve`: everything in one process tree, started and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys

from aiohttp import web

from config.settings import Settings
from gateway.app import build_services, create_app
from gateway.embedded import EmbeddedRedis
from gateway.runtime import settle_memory
from gateway.smtp import SmtpIntake
from workers.db import make_engine, upgrade

log = logging.getLogger("aduan")


def _start_worker(settings: Settings, redis_url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["REDIS_URL"] = redis_url
    env["ADUAN_DATA_DIR"] = str(settings.data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker"], env=env, start_new_session=True
    )


async def serve(settings: Settings, *, with_worker: bool) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedRedis | None = None
    worker: subprocess.Popen[bytes] | None = None
    runner: web.AppRunner | None = None
    smtp: SmtpIntake | None = None
    try:
        redis_url = settings.redis_url
        if redis_url is None:
            embedded = await asyncio.to_thread(EmbeddedRedis(settings.data_dir).start)
            redis_url = embedded.url
        engine = make_engine(settings.effective_database_url)
        await asyncio.to_thread(upgrade, engine)
        engine.dispose()
        if with_worker:
            worker = _start_worker(settings, redis_url)
        services = build_services(settings, redis_url)
        runner = web.AppRunner(create_app(services), handle_signals=False, shutdown_timeout=15)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        smtp = SmtpIntake(services)
        await smtp.start()
        _banner(settings, redis_url, embedded is not None, with_worker)
        settle_memory()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("\naduan: stopping…", file=sys.stderr)
        return 0
    finally:
        if smtp is not None:
            await smtp.stop()  # lets mails being queued finish, so none is half-taken
        if runner is not None:
            await runner.cleanup()  # stops accepting, lets in-flight requests finish
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # RQ's warm shutdown: finish the current job
            try:
                await asyncio.to_thread(worker.wait, 30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if embedded is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(embedded.stop)


def _banner(settings: Settings, redis_url: str, embedded: bool, with_worker: bool) -> None:
    db = settings.effective_database_url
    queue = f"embedded Redis in {settings.data_dir}" if embedded else "REDIS_URL"
    store = f"SQLite {db.removeprefix('sqlite:///')}" if db.startswith("sqlite") else "DATABASE_URL"
    lines = [
        "aduan is running.",
        f"  Complaint form   http://{settings.http_host}:{settings.http_port}/",
        f"  App API          POST {settings.public_url}/api/v1/complaints",
        f"  Health           {settings.public_url}/healthz",
        f"  Email (SMTP)     {settings.smtp_host}:{settings.smtp_port} for "
        f"{', '.join(settings.email_domains)}{' (STARTTLS)' if settings.smtp_tls_cert else ''}",
        f"  Queue            {queue}",
        f"  Case store       {store}",
        f"  Worker           {'started' if with_worker else 'not started (--no-worker)'}",
        "  Replies          outbox (`aduan outbox`) until provider credentials are set",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
    if settings.insecure_webhooks:
        bar = "!" * 72
        print(
            f"{bar}\n"
            "!! WARNING: ADUAN_INSECURE_WEBHOOKS is on. Provider signatures are NOT checked:\n"
            "!! anyone who can reach this server can post fake SMS and WhatsApp messages.\n"
            "!! Development only. Never run a public gateway like this.\n"
            f"{bar}",
            file=sys.stderr,
            flush=True,
        )
    del redis_url
