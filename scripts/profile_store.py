"""Profile the store job on its own: N complaints through `workers.store.store` in batches.

    .venv/bin/python scripts/profile_store.py -n 2000 --batch 50            # timing only
    .venv/bin/python scripts/profile_store.py -n 2000 --profile | head -60  # cProfile
    .venv/bin/python scripts/profile_store.py --database-url postgresql://127.0.0.1/test

No Redis, no HTTP: complaints are normalised here (as the gateway would) and stored with
the worker's engine, so the figure is the store's own cost per complaint.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from channels.base import InboundMessage
from config.data import load_taxonomy
from config.settings import load_settings
from normalizer import Rules, normalize
from workers.context import Context
from workers.db import make_engine, upgrade
from workers.store import store

TEXTS = [
    "Jalan rusak di gang {i}",
    "Jalan berlubang di Jl. Pajajaran depan Tugu Kujang nomor {i}",
    "Sampah menumpuk di TPS Jl. Merdeka sudah seminggu, bau busuk ({i})",
    "Lampu PJU mati di gang {i} Kelurahan Tegallega",
    "The drain on street {i} is clogged and floods every time it rains",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--database-url")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--report-every", type=int, default=0, help="print the rate so far")
    parser.add_argument("--same-text", action="store_true", help="every complaint alike")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aduan-profile-"))
    schema = None
    url = args.database_url or f"sqlite:///{tmp / 'cases.sqlite3'}"
    if url.startswith("postgres"):
        schema = "profile_" + secrets.token_hex(4)
        admin = make_engine(url)
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    env = {
        "ADUAN_DATA_DIR": str(tmp),
        "DATABASE_URL": url,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "ADUAN_LOG_LEVEL": "WARNING",
    }
    settings = load_settings(env)
    context = Context(settings, env["REDIS_URL"])
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    complaints = []
    for i in range(args.n):
        body = (TEXTS[0] if args.same_text else TEXTS[i % len(TEXTS)]).format(i=i)
        message = InboundMessage(
            channel="sms",
            provider="twilio",
            provider_message_id="SM" + secrets.token_hex(16),
            sender="+62812" + "".join(secrets.choice("0123456789") for _ in range(8)),
            text=body,
        )
        complaints.append(normalize(message, rules))
    batches = [complaints[i : i + args.batch] for i in range(0, len(complaints), args.batch)]
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    cpu_started = time.process_time()
    if profiler:
        profiler.enable()
    mark, mark_at = 0, time.perf_counter()
    for number, batch in enumerate(batches, 1):
        store(context, batch)
        done = number * args.batch
        if args.report_every and (done - mark >= args.report_every or number == len(batches)):
            now = time.perf_counter()
            print(
                f"  {done:>7} stored, last {done - mark} at {(done - mark) / (now - mark_at):.0f}/s"
            )
            mark, mark_at = done, now
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"{args.n} complaints in batches of {args.batch} on {context.engine.dialect.name}: "
        f"{elapsed:.2f}s, {args.n / elapsed:.0f}/s, {elapsed / args.n * 1000:.2f} ms each; "
        f"CPU {cpu:.2f}s, {cpu / args.n * 1000:.2f} ms each (steadier on a busy machine)"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    context.engine.dispose()
    if schema:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
