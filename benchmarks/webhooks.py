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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUTH_TOKEN = "benchmark-twilio-auth-token"  # noqa: S105 - a throwaway server's
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
TEXTS = [
    "Jalan berlubang besar di Jl. Pajajaran depan Tugu Kujang, sudah 2 minggu ({i}).",
    "Sampah menumpuk di TPS Jl. Merdeka, bau busuk sampai ke rumah warga ({i}).",
    "Lampu PJU mati total di gang Mawar {i}, gelap sekali kalau malam.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited at start (code {process.returncode}).")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url} within 30 s.")


def bare_server(port: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/twilio", handler)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/healthz", process, "the bare server")
    return process, url


def start_aduan(
    data_dir: str, redis_url: str | None, queue: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADUAN_")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(
        ADUAN_DATA_DIR=data_dir,
        ADUAN_HTTP_PORT=str(port),
        ADUAN_SMTP_PORT=str(free_port()),
        ADUAN_PUBLIC_URL=url,
        ADUAN_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        ADUAN_QUEUE=queue,
        ADUAN_LOG_LEVEL="WARNING",
        # One client sends everything: per-sender and per-IP limits would measure themselves.
        ADUAN_RATE_LIMITS="ip=0/60,sms=0/60,whatsapp=0/60",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--no-worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until_up(f"{url}/healthz", process, "aduan serve --no-worker")
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def signed_requests(base_url: str, count: int, run: str) -> list[tuple[bytes, str]]:
    """Bodies and signatures made before the clock starts, by the twilio package itself.

    `run` is 8 hex digits that no other batch of this run shares.
    """
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    url = f"{base_url}/webhooks/twilio"
    requests = []
    for i in range(count):
        sid = f"SM{run}{i:024x}"  # 32 hex digits, unique per request
        fields = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": TEXTS[i % len(TEXTS)].format(i=i),
            "FromCountry": "ID",
            "To": "+14155550100",
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": f"+62812{i % 10**8:08d}",
            "ApiVersion": "2010-04-01",
        }
        requests.append((urlencode(fields).encode(), validator.compute_signature(url, fields)))
    return requests


@dataclass
class Result:
    name: str
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def hammer(
    name: str, url: str, requests: list[tuple[bytes, str]], concurrency: int
) -> Result:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal failures
            while not queue.empty():
                body, signature = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(
                    f"{url}/webhooks/twilio",
                    data=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature,
                    },
                ) as response:
                    text = await response.text()
                elapsed = time.perf_counter() - started
                if response.status == 200 and text == EMPTY_TWIML:
                    latencies.append(elapsed)
                else:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, seconds, latencies, failures)


def queued_complaints(data_dir: str, redis_url: str | None, queue_name: str) -> int:
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    from gateway.embedded import _socket_path

    url = redis_url or f"unix://{_socket_path(Path(data_dir))}"
    connection = redis.Redis.from_url(url)
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    total = sum(len(job.args[0]) for job in queue.get_jobs())
    queue.empty()
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
