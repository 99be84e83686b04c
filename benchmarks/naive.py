"""The naive peer of the end-to-end benchmark: the pipeline one writes first with RQ.

- gateway: an aiohttp handler that checks the Twilio signature with the twilio package's
  `RequestValidator`, enqueues ONE RQ job per message with `queue.enqueue` (RQ's default
  serializer, a blocking call in the handler, as in most examples), and answers empty TwiML;
- workers: RQ's default `Worker`, which forks a work horse for every job;
- the job: inserts the case (unique on the MessageSid) and a reply row (`queued`) with
  SQLAlchemy, in one transaction, into two tables of its own, in the same kind of database
  as aduan's (SQLite in WAL mode with synchronous=FULL like aduan's, or PostgreSQL).

The worker imports the job's module and creates its SQLAlchemy engine before it starts
working, so a work horse does not import SQLAlchemy, the dialect and the driver again for
every job (without that, a job costs over 100 ms on PostgreSQL). Each work horse opens a
database connection of its own, since a connection must not cross a fork.

    python -m benchmarks.naive gateway --port P --redis-url URL --queue Q --public-url URL
    python -m benchmarks.naive worker --redis-url URL --queue Q   # NAIVE_DATABASE_URL=…
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

JOB = "benchmarks.naive.store_message"
DATABASE_ENV = "NAIVE_DATABASE_URL"

metadata = MetaData()
cases = Table(
    "naive_cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("message_sid", String(64), unique=True, nullable=False),
    Column("sender", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
replies = Table(
    "naive_replies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", ForeignKey("naive_cases.id"), nullable=False, index=True),
    Column("to", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def engine_for(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith("sqlite"):
        return create_engine(url)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def create_tables(url: str) -> None:
    engine = engine_for(url)
    metadata.create_all(engine)
    engine.dispose()


def count_done(engine: Engine, sid_prefix: str = "") -> int:
    """Messages stored with their reply row."""
    query = select(func.count()).select_from(replies.join(cases, cases.c.id == replies.c.case_id))
    if sid_prefix:
        query = query.where(cases.c.message_sid.startswith(sid_prefix))
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


_engine: Engine | None = None


def engine() -> Engine:
    """The module's engine, as a job module usually has one. The worker creates it before
    it forks (loading the dialect and the driver once); it never connects there, so each
    work horse opens a connection of its own."""
    global _engine
    if _engine is None:
        _engine = engine_for(os.environ[DATABASE_ENV])
    return _engine


def store_message(params: dict[str, str]) -> str:
    """The RQ job: one message, one case, one reply row."""
    now = datetime.now(UTC)
    try:
        with engine().begin() as connection:
            case_id = connection.execute(
                insert(cases)
                .values(
                    message_sid=params["MessageSid"],
                    sender=params["From"],
                    body=params.get("Body", ""),
                    status="received",
                    created_at=now,
                )
                .returning(cases.c.id)
            ).scalar_one()
            ticket = f"NAIVE-{case_id:06d}"
            connection.execute(
                insert(replies).values(
                    case_id=case_id,
                    to=params["From"],
                    body=f"Laporan diterima. Nomor: {ticket}",
                    status="queued",
                    created_at=now,
                )
            )
    except IntegrityError:
        return "duplicate"
    return ticket


def gateway(port: int, redis_url: str, queue_name: str, public_url: str, token: str) -> None:
    import redis
    from aiohttp import web
    from rq import Queue
    from twilio.request_validator import RequestValidator

    from benchmarks.common import EMPTY_TWIML

    validator = RequestValidator(token)
    queue = Queue(queue_name, connection=redis.Redis.from_url(redis_url))
    webhook_url = f"{public_url}/webhooks/twilio"

    async def webhook(request: web.Request) -> web.Response:
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(webhook_url, params, signature):
            return web.Response(status=403, text="bad signature")
        queue.enqueue(JOB, params)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/twilio", webhook)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def worker(redis_url: str, queue_name: str) -> None:
    import importlib

    import redis
    from rq import Worker

    module = importlib.import_module("benchmarks.naive")  # the job's module, before the forks
    module.engine()
    connection = redis.Redis.from_url(redis_url)
    Worker([queue_name], connection=connection).work(logging_level="WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=["gateway", "worker"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--public-url", default="")
    args = parser.parse_args()
    if args.role == "gateway":
        from benchmarks.common import AUTH_TOKEN

        gateway(args.port, args.redis_url, args.queue, args.public_url, AUTH_TOKEN)
    else:
        worker(args.redis_url, args.queue)


if __name__ == "__main__":
    main()
