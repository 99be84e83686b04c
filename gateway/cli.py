"""`aduan`: serve, worker, db upgrade, webhooks, outbox, failed list / requeue, operator,
keys generate / rotate."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from config.settings import Settings, SettingsError, load_settings
from workers.models import OPERATOR_ROLES

log = logging.getLogger("aduan")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces every plugin it loads; only the migrations it runs matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)


def _embedded_socket(settings: Settings) -> str | None:
    from gateway.embedded import _socket_path

    path = _socket_path(settings.data_dir)
    return f"unix://{path}" if path.exists() else None


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from workers.db import make_engine, upgrade

    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    engine.dispose()
    print(f"Case store is up to date ({engine.url.render_as_string(hide_password=True)}).")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    # The jobs' code, loaded before settle_memory freezes what startup made.
    import workers.replies
    import workers.store  # noqa: F401
    from gateway.runtime import settle_memory
    from workers.worker import run_worker

    redis_url = settings.redis_url or _embedded_socket(settings)
    if redis_url is None:
        raise SettingsError(
            "Setting 'REDIS_URL' is not set and no embedded Redis is running in "
            f"{settings.data_dir}: start `aduan serve` or set REDIS_URL."
        )
    settle_memory()
    run_worker(settings, redis_url, burst=args.burst)
    return 0


def cmd_webhooks(settings: Settings, _args: argparse.Namespace) -> int:
    base = settings.public_url
    print("Configure these URLs at each provider (computed from ADUAN_PUBLIC_URL):\n")
    print(f"  Web form                      {base}/")
    print(f"  App API                       POST {base}/api/v1/complaints")
    print(f"  Twilio SMS/WhatsApp incoming  POST {base}/webhooks/twilio")
    print(f"  Twilio status callback        POST {base}/webhooks/twilio/status")
    print(f"  WhatsApp Cloud API (Meta)     GET+POST {base}/webhooks/whatsapp")
    print(
        f"  Email (SMTP)                  {settings.smtp_host}:{settings.smtp_port}, "
        f"recipients @{', @'.join(settings.email_domains)}"
    )
    return 0


def cmd_outbox(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from workers import models
    from workers.db import make_engine, session_factory

    engine = make_engine(settings.effective_database_url)
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(models.Delivery)
            .where(models.Delivery.status == "outbox")
            .order_by(models.Delivery.id.desc())
            .limit(args.limit)
        ).all()
        for row in rows:
            body = "(sealed: confidential)" if row.sealed else row.body
            print(
                f"{row.created_at:%Y-%m-%d %H:%M:%S} #{row.id} {row.channel:8} {row.kind:22} {body}"
            )
    engine.dispose()
    return 0


def _failed_registries(settings: Settings) -> list[tuple[Any, Any]]:
    """(queue, its failed-job registry) for the store queue and the replies queue."""
    import redis
    from rq import Queue
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer

    from workers.context import reply_queue_name

    redis_url = settings.redis_url or _embedded_socket(settings)
    if redis_url is None:
        raise SettingsError("Setting 'REDIS_URL' is not set and no embedded Redis is running.")
    connection = redis.Redis.from_url(redis_url)
    found = []
    for name in (settings.queue_name, reply_queue_name(settings.queue_name)):
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        found.append((queue, FailedJobRegistry(queue=queue)))
    return found


def cmd_failed(settings: Settings, args: argparse.Namespace) -> int:
    from rq.job import Job

    registries = _failed_registries(settings)
    failed = [
        (job_id, queue, registry)
        for queue, registry in registries
        for job_id in registry.get_job_ids()
    ]
    if args.failed_command == "list":
        if not failed:
            print("No failed jobs.")
        for job_id, queue, _ in failed:
            job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
            result = job.latest_result()
            lines = (result.exc_string or "").strip().splitlines() if result else []
            print(f"{job_id}  {job.description}  {lines[-1] if lines else ''}")
        return 0
    where = {job_id: registry for job_id, _, registry in failed}
    wanted = list(where) if args.all else args.job_ids
    if not wanted:
        print("Name job ids to requeue, or --all.", file=sys.stderr)
        return 2
    unknown = [job_id for job_id in wanted if job_id not in where]
    for job_id in wanted:
        if job_id in where:
            where[job_id].requeue(job_id)
            print(f"requeued {job_id}")
    if unknown:
        print(f"Not a failed job: {', '.join(unknown)}", file=sys.stderr)
        return 1
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise SettingsError("The two passwords differ; nothing was changed.")
    return first


def cmd_operator(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from gateway.auth import create_operator, hash_password
    from workers import models
    from workers.db import make_engine, session_factory, upgrade

    engine = make_engine(settings.effective_database_url)
    upgrade(engine)  # `operator add` may well be the first thing run on a new machine
    try:
        with session_factory(engine)() as session, session.begin():
            if args.operator_command == "list":
                for row in session.scalars(select(models.Operator).order_by(models.Operator.id)):
                    state = "active" if row.active else "disabled"
                    last = f"{row.last_login_at:%Y-%m-%d %H:%M}" if row.last_login_at else "never"
                    print(f"{row.username:24} {row.role:10} {state:8} last log-in {last}")
                return 0
            if args.operator_command == "add":
                operator = create_operator(session, args.username, args.role, _read_password(args))
                print(f"Operator {operator.username!r} added as {operator.role}.")
                return 0
            found = session.scalar(
                select(models.Operator).where(models.Operator.username == args.username)
            )
            if found is None:
                print(f"aduan: no operator named {args.username!r}.", file=sys.stderr)
                return 1
            if args.operator_command == "disable":
                found.active = False
                print(f"Operator {found.username!r} disabled; their sessions end now.")
            elif args.operator_command == "enable":
                found.active = True
                print(f"Operator {found.username!r} enabled.")
            else:  # password
                found.password_hash = hash_password(_read_password(args))
                print(f"Password of {found.username!r} changed.")
            return 0
    except ValueError as exc:
        print(f"aduan: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def cmd_keys_generate(_settings: Settings | None, _args: argparse.Namespace) -> int:
    from workers.crypto import generate_key

    print(generate_key())
    return 0


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    """Re-seal the case store with the first key of ADUAN_ENCRYPTION_KEY.

    Safe to run again after an interruption, and while aduan runs (every process must
    already have the new key first in its ADUAN_ENCRYPTION_KEY)."""
    import redis
    from sqlalchemy.exc import DBAPIError

    from workers.crypto import Crypto
    from workers.db import make_engine
    from workers.keys import Counts, rotate_store, stale_in_queue, stale_in_spool

    if args.batch_size < 1:
        raise SettingsError("--batch-size must be at least 1.")
    crypto = Crypto(settings.encryption_keys, settings.secret_key)
    engine = make_engine(settings.effective_database_url)
    where = engine.url.render_as_string(hide_password=True)
    count = len(settings.encryption_keys)
    print(f"Re-sealing {where} with the newest of {count} key(s) in ADUAN_ENCRYPTION_KEY.")

    def progress(label: str, counts: Counts) -> None:
        if counts.seen and counts.seen % (args.batch_size * 20) == 0:
            print(f"  {label}: {counts.seen} so far…", flush=True)

    try:
        results = rotate_store(engine, crypto, batch_size=args.batch_size, progress=progress)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(
            f"aduan: cannot read the case store ({reason}); check DATABASE_URL and run "
            "`aduan db upgrade`. Nothing after the last completed batch was changed.",
            file=sys.stderr,
        )
        return 1
    finally:
        engine.dispose()
    unreadable = 0
    for label, counts in results.items():
        line = f"  {label:26} {counts.rotated:7} re-sealed {counts.current:7} already current"
        if counts.unreadable:
            shown = ", ".join(str(i) for i in counts.unreadable[:10])
            more = " …" if len(counts.unreadable) > 10 else ""
            line += f" {len(counts.unreadable):7} UNREADABLE (ids {shown}{more})"
        unreadable += len(counts.unreadable)
        print(line)

    waiting = stale_in_spool(settings.data_dir / "spool", crypto)
    redis_url = settings.redis_url or _embedded_socket(settings)
    if redis_url is not None:
        connection = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        try:
            waiting += stale_in_queue(connection, settings.queue_name, crypto)
        except redis.RedisError as exc:
            print(f"  (queue not checked: {type(exc).__name__})")
        finally:
            connection.close()
    else:
        print("  (queue not checked: REDIS_URL is not set and no embedded Redis is running)")
    if waiting:
        print(
            f"{waiting} queued, failed or spooled complaint(s) are still sealed with an older "
            "key: let the worker store them (or `aduan failed requeue`) before removing it."
        )
    if unreadable:
        print(
            f"aduan: {unreadable} sealed value(s) open with none of the configured keys; "
            "the key that sealed them is missing from ADUAN_ENCRYPTION_KEY.",
            file=sys.stderr,
        )
        return 1
    if count > 1 and not waiting:
        print("Done: the older key(s) can now be removed from ADUAN_ENCRYPTION_KEY.")
    else:
        print("Done.")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.runtime import run
    from gateway.server import serve

    return run(serve(settings, with_worker=not args.no_worker))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aduan", description="Complaint intake gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run HTTP (and SMTP), the embedded defaults and a worker")
    serve.add_argument("--no-worker", action="store_true", help="run the gateway only")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run a worker for the queue")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(func=cmd_worker)
    db = sub.add_parser("db", help="case store")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    sub.add_parser("webhooks", help="print the URLs to configure at each provider").set_defaults(
        func=cmd_webhooks
    )
    outbox = sub.add_parser("outbox", help="replies kept because no provider is configured")
    outbox.add_argument("--limit", type=int, default=50)
    outbox.set_defaults(func=cmd_outbox)
    failed = sub.add_parser("failed", help="jobs that failed after their retries")
    failed_sub = failed.add_subparsers(dest="failed_command", required=True)
    failed_sub.add_parser("list").set_defaults(func=cmd_failed)
    requeue = failed_sub.add_parser("requeue")
    requeue.add_argument("job_ids", nargs="*")
    requeue.add_argument("--all", action="store_true")
    requeue.set_defaults(func=cmd_failed)
    operator = sub.add_parser("operator", help="console accounts")
    operator_sub = operator.add_subparsers(dest="operator_command", required=True)
    add = operator_sub.add_parser("add", help="add an account (asks for its password)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=OPERATOR_ROLES)
    operator_sub.add_parser("list", help="list the accounts")
    for name, text in (
        ("disable", "stop an account from logging in"),
        ("enable", "let a disabled account log in again"),
        ("password", "set a new password"),
    ):
        action = operator_sub.add_parser(name, help=text)
        action.add_argument("username")
    for action in (add, operator_sub.choices["password"]):
        action.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
    operator.set_defaults(func=cmd_operator)
    keys = sub.add_parser("keys", help="the encryption key of confidential contact details")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="print a fresh key for ADUAN_ENCRYPTION_KEY").set_defaults(
        func=cmd_keys_generate, needs_settings=False
    )
    rotate = keys_sub.add_parser(
        "rotate", help="re-seal every sealed value with the first key of ADUAN_ENCRYPTION_KEY"
    )
    rotate.add_argument(
        "--batch-size", type=int, default=500, help="rows per committed batch (default 500)"
    )
    rotate.set_defaults(func=cmd_keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "needs_settings", True):
        return int(args.func(None, args))
    try:
        settings = load_settings(create_secrets=args.command == "serve")
    except SettingsError as exc:
        print(f"aduan: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    # Says at DEBUG that DEBUG is on, in the gateway and in the worker it starts; never
    # the settings themselves (DATABASE_URL may hold a password).
    log.debug("aduan %s: logging at %s", args.command, settings.log_level)
    try:
        return int(args.func(settings, args))
    except SettingsError as exc:
        print(f"aduan: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
