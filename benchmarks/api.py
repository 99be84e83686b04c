"""Post N complaints to the app API and print complaints/s end to end and latency.

    .venv/bin/python benchmarks/api.py                 # starts its own `aduan serve`
    .venv/bin/python benchmarks/api.py --url http://127.0.0.1:8080 -n 2000 -c 50

End to end: each request is answered 201 only once its complaint is stored in the case
store and has a ticket (the API waits for the store job), so complaints/s here is the
whole path: HTTP → normalise → queue → worker → database → answer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "Jalan berlubang di Jl. Pajajaran depan Tugu Kujang nomor {i}",
    "Sampah menumpuk di TPS Jl. Merdeka sudah seminggu, bau busuk ({i})",
    "Lampu PJU mati di gang {i} Kelurahan Tegallega",
    "The drain on street {i} is clogged and floods every time it rains",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        ADUAN_DATA_DIR=data_dir,
        ADUAN_HTTP_PORT=str(port),
        ADUAN_LOG_LEVEL="WARNING",
        ADUAN_SMTP_PORT=str(free_port()),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):  # noqa: S310 - loopback
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("aduan serve did not start")


def progress(done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / total)
    rate = done / max(time.perf_counter() - started, 1e-9)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:7.0f}/s")
    sys.stderr.flush()


async def run(url: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(total))
    started = time.perf_counter()
    failures = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for i in counter:
            body = {"text": TEXTS[i % len(TEXTS)].format(i=i)}
            t0 = time.perf_counter()
            async with session.post(f"{url}/api/v1/complaints", json=body) as response:
                await response.read()
                if response.status != 201:
                    failures += 1
            latencies.append(time.perf_counter() - t0)
            if len(latencies) % 50 == 0 or len(latencies) == total:
                progress(len(latencies), total, started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    sys.stderr.write("\n")
    if failures:
        print(f"WARNING: {failures} requests were not answered 201")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running aduan; default: start one on the embedded default")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    args = parser.parse_args()
    process = None
    with tempfile.TemporaryDirectory(prefix="aduan-bench-") as data_dir:
        url = args.url
        if url is None:
            process, url = start_server(data_dir)
        try:
            asyncio.run(run(url, min(100, args.requests), args.concurrency))  # warm up
            started = time.perf_counter()
            latencies = asyncio.run(run(url, args.requests, args.concurrency))
            elapsed = time.perf_counter() - started
        finally:
            if process is not None:
                process.send_signal(signal.SIGINT)
                process.wait(30)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"target         {url if args.url else 'aduan serve (embedded Redis + SQLite)'}")
    print(f"complaints     {len(latencies)} at concurrency {args.concurrency}")
    print(
        f"throughput     {len(latencies) / elapsed:.0f} complaints/s end to end (stored, ticketed)"
    )
    print(f"latency        p50 {p50:.1f} ms   p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
