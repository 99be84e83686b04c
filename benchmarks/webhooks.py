"""Signed Twilio SMS webhooks: acknowledge throughput and latency, next to a bare handler.

    .venv/bin/python benchmarks/webhooks.py               # 2000 requests, 32 at a time
    .venv/bin/python benchmarks/webhooks.py -n 5000 -c 64 --redis-url redis://127.0.0.1:6379/3

Two servers, each in a process of its own, get the same signed requests from the same
client in the same run:

- bare: an aiohttp handler that parses the form and answers empty TwiML — the floor;
- aduan: `aduan serve --no-worker` answering POST /webhooks/twilio: signature check,
  parse, normalise, the SET NX claim and the enqueue into Redis, then empty TwiML. Its
  Redis is the embedded one (append-only, fsync on every write) unless --redis-url names
  another. No worker runs: what is measured is the acknowledgement, and every
  acknowledged complaint is counted in the queue afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402 - after the path
    aduan_env,
    bare_server,
    hammer,
    signed_requests,
    start_bare,
    start_gateway,
    stop,
)


def start_aduan(
    data_dir: str, redis_url: str | None, queue: str
) -> tuple[subprocess.Popen[bytes], str]:
    return start_gateway(aduan_env(data_dir, redis_url=redis_url, ADUAN_QUEUE=queue))


def queued_complaints(data_dir: str, redis_url: str | None, queue_name: str) -> int:
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    from gateway.embedded import _socket_path

    url = redis_url or f"unix://{_socket_path(Path(data_dir))}"
    connection = redis.Redis.from_url(url)
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    total = sum(len(job.args[0]) for job in queue.get_jobs())
    queue.empty()  # type: ignore[no-untyped-call]
    connection.close()
    return total


async def main(args: argparse.Namespace) -> int:
    run = secrets.token_hex(3)
    queue_name = f"bench-webhooks-{run}"
    with tempfile.TemporaryDirectory(prefix="aduan-bench-") as data_dir:
        bare, bare_url = start_bare()
        aduan, aduan_url = start_aduan(data_dir, args.redis_url, queue_name)
        try:
            warmup = signed_requests(aduan_url, 200, run + "00")
            await hammer("warm-up", bare_url, warmup, args.concurrency)
            warm = await hammer("warm-up", aduan_url, warmup, args.concurrency)
            bare_result = await hammer(
                "bare aiohttp (parse form)",
                bare_url,
                signed_requests(bare_url, args.requests, run + "01"),
                args.concurrency,
            )
            aduan_result = await hammer(
                "aduan POST /webhooks/twilio",
                aduan_url,
                signed_requests(aduan_url, args.requests, run + "02"),
                args.concurrency,
            )
            queued = queued_complaints(data_dir, args.redis_url, queue_name)
        finally:
            stop(bare)
            stop(aduan)
    redis_kind = "REDIS_URL" if args.redis_url else "embedded Redis, appendfsync always"
    print(
        f"webhooks.py: {args.requests} signed Twilio SMS webhooks, {args.concurrency} at a "
        f"time, on {os.cpu_count()} CPUs; aduan with {redis_kind}, no worker"
    )
    print(f"{'':30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    for result in (bare_result, aduan_result):
        print(
            f"{result.name:30} {result.rate:8.0f} {result.percentile(50):8.2f} "
            f"{result.percentile(99):8.2f} {result.failures:7d}"
        )
    print(
        f"{'aduan / bare':30} {aduan_result.rate / bare_result.rate:8.2f} "
        f"{aduan_result.percentile(50) / bare_result.percentile(50):8.1f}x "
        f"{aduan_result.percentile(99) / bare_result.percentile(99):7.1f}x"
    )
    acknowledged = len(warm.latencies) + len(aduan_result.latencies)
    print(f"complaints in aduan's queue afterwards: {queued} of {acknowledged} acknowledged")
    ok = aduan_result.failures == 0 and queued == acknowledged
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.bare_server:
        bare_server(arguments.bare_server)
        sys.exit(0)
    sys.exit(asyncio.run(main(arguments)))
