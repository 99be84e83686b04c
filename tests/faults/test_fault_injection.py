"""Fault injection: kill and restart the real processes while complaints arrive.

Its own redis-server (append-only, fsync always), a case store (SQLite, and a PostgreSQL
server of its own where the binaries are installed), two gateway processes and two worker
processes. A few thousand signed Twilio SMS webhooks are sent,
retried like Twilio would on a connection error or a 5xx, while a busy worker is
SIGKILLed and replaced, redis-server is SIGKILLed and restarted on the same directory,
and a gateway is SIGTERMed and started again. Then the figures:

    sent N, acknowledged N, stored N, replied N, lost N, duplicated N
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import redis
from rq import Queue, Worker
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from twilio.request_validator import RequestValidator

from gateway.embedded import EmbeddedRedis
from tests.conftest import ROOT, free_port, settings_env, start_worker, stop_process
from tests.fakes.stack import phone_number
from tests.faults.postgres import PrivatePostgres, unavailable
from tests.test_twilio_e2e import SMS_FROM
from workers import models
from workers.db import make_engine, session_factory, upgrade

MESSAGES = 3000
RATE = 150.0  # messages started per second: the faults land while traffic flows
CONCURRENCY = 32
ATTEMPTS = 6  # one delivery and up to five retries, as a provider would
SETTLE_WITHIN = 240.0  # at most this long for the queue to drain after the last request
ARTIFACT = ROOT / "artifacts" / "faults.txt"


@dataclass
class Figures:
    sent: int
    acknowledged: int
    stored: int
    replied: int
    lost: int
    duplicated: int
    cases: int
    cases_without_one_reply: int

    def line(self) -> str:
        return (
            f"sent {self.sent}, acknowledged {self.acknowledged}, stored {self.stored}, "
            f"replied {self.replied}, lost {self.lost}, duplicated {self.duplicated}"
        )


class Cluster:
    """The processes under test, started and killed by the test itself."""

    def __init__(self, tmp: Path, env: dict[str, str], redis_server: EmbeddedRedis) -> None:
        self.tmp = tmp
        self.env = env
        self.redis_server = redis_server
        self.ports = [free_port(), free_port()]
        self.gateways: list[subprocess.Popen[bytes] | None] = [None, None]
        self.workers: list[subprocess.Popen[bytes]] = []
        self.events: list[str] = []
        self.started = time.monotonic()

    def note(self, event: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.1f}s {event}")

    def start_gateway(self, index: int) -> None:
        port = self.ports[index]
        env = {
            **os.environ,
            **self.env,
            # Each gateway has a disk (and so a spool) of its own, as on separate machines.
            "ADUAN_DATA_DIR": str(self.tmp / f"gateway{index}"),
            "ADUAN_HTTP_PORT": str(port),
            "ADUAN_SMTP_PORT": str(free_port()),
            "ADUAN_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        with (self.tmp / f"gateway{index}.log").open("ab") as log:
            self.gateways[index] = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--no-worker"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = start_worker(self.env, self.tmp / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}/webhooks/twilio"

    def stop(self) -> None:
        running = [p for p in [*self.gateways, *self.workers] if p is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running:
            stop_process(process)


async def healthy(client: aiohttp.ClientSession, port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            async with client.get(f"http://127.0.0.1:{port}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise AssertionError(f"gateway on port {port} not healthy within {within}s")


def busy_worker_pid(redis_url: str, queue: str, candidates: set[int]) -> int | None:
    """A worker process of ours that RQ says is in the middle of a job."""
    connection = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
    try:
        for worker in Worker.all(connection=connection):
            if worker.pid in candidates and worker.get_state() == "busy":
                return int(worker.pid)
    except redis.RedisError:
        return None
    finally:
        connection.close()
    return None


async def inject_faults(cluster: Cluster, client: aiohttp.ClientSession, progress: Any) -> None:
    redis_url = cluster.env["REDIS_URL"]
    queue = cluster.env["ADUAN_QUEUE"]

    async def reach(fraction: float) -> None:
        while progress() < fraction * MESSAGES:  # noqa: ASYNC110 - a counter, polled
            await asyncio.sleep(0.05)

    # 1. SIGKILL a worker in the middle of a job, and start a new one.
    await reach(0.15)
    pids = {w.pid for w in cluster.workers if w.poll() is None}
    victim_pid = None
    deadline = time.monotonic() + 5
    while victim_pid is None and time.monotonic() < deadline:
        victim_pid = await asyncio.to_thread(busy_worker_pid, redis_url, queue, pids)
    victim = next(w for w in cluster.workers if w.pid == (victim_pid or cluster.workers[0].pid))
    victim.kill()
    victim.wait()
    cluster.note(f"SIGKILL worker {victim.pid} ({'busy' if victim_pid else 'state unknown'})")
    cluster.start_worker()
    cluster.note("new worker started")

    # 2. SIGKILL redis-server, and restart it on the same directory and socket.
    await reach(0.40)
    process = cluster.redis_server.process
    assert process is not None
    process.kill()
    process.wait()
    cluster.note("SIGKILL redis-server")
    await asyncio.sleep(1.5)
    await asyncio.to_thread(cluster.redis_server.start)
    cluster.note("redis-server restarted")

    # 3. SIGTERM a gateway; clients retry against the other; start it again.
    await reach(0.70)
    gateway = cluster.gateways[1]
    assert gateway is not None
    gateway.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(gateway.wait, 30)
    cluster.note(f"SIGTERM gateway 1 (exit {code})")
    cluster.start_gateway(1)
    await healthy(client, cluster.ports[1])
    cluster.note("gateway 1 restarted")


def queue_busy(redis_url: str, env: dict[str, str]) -> bool:
    """Does the queue still hold a job, in any state but finished or failed?"""
    try:
        connection = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
        queue = Queue(env["ADUAN_QUEUE"], connection=connection)
        return bool(
            queue.count
            or queue.started_job_registry.count
            or queue.scheduled_job_registry.count
            or queue.intermediate_queue.get_job_ids()
        )
    except redis.RedisError:
        return True


def sms_forms(count: int, body: str) -> list[dict[str, str]]:
    """Twilio's form for `count` SMS, each from a number of its own; `body` may use {i}."""
    # Distinct for certain: two of 3,000 random numbers share one about once in 20 runs,
    # and the second message is then (rightly) a follow-up without a reply of its own.
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add(phone_number())
    return [
        {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": number,
            "To": SMS_FROM,
            "Body": body.format(i=i),
            "NumMedia": "0",
        }
        for i, number in enumerate(sorted(numbers))
    ]


def measure(engine: Engine, sent: list[str], acknowledged: set[str]) -> Figures:
    with session_factory(engine)() as session:
        rows = session.execute(
            select(models.Message.provider_message_id, models.Message.case_id).where(
                models.Message.provider_message_id.in_(sent)
            )
        ).all()
        case_ids = sorted({case_id for _, case_id in rows if case_id is not None})
        deliveries = session.execute(
            select(models.Delivery.case_id, models.Delivery.kind, func.count())
            .where(models.Delivery.case_id.in_(case_ids))
            .group_by(models.Delivery.case_id, models.Delivery.kind)
        ).all()
    per_sid: dict[str, int] = {}
    for sid, _ in rows:
        per_sid[sid] = per_sid.get(sid, 0) + 1
    per_case: dict[int, int] = {}
    receipts: dict[int, int] = {}
    for case_id, kind, count in deliveries:
        per_case[case_id] = per_case.get(case_id, 0) + count
        if kind in ("received", "received_confidential"):
            receipts[case_id] = receipts.get(case_id, 0) + count
    stored = len(acknowledged & per_sid.keys())
    duplicated = sum(n - 1 for n in per_sid.values() if n > 1)
    duplicated += sum(1 for n in receipts.values() if n > 1)
    return Figures(
        sent=len(sent),
        acknowledged=len(acknowledged),
        stored=stored,
        replied=len(per_case),
        lost=len(acknowledged) - stored,
        duplicated=duplicated,
        cases=len(case_ids),
        cases_without_one_reply=sum(1 for c in case_ids if per_case.get(c, 0) != 1),
    )


def report(request: pytest.FixtureRequest, text: str) -> None:
    print(text)
    ARTIFACT.parent.mkdir(exist_ok=True)
    with ARTIFACT.open("a") as handle:
        handle.write(text + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_nothing_acknowledged_is_lost_or_duplicated_while_processes_die(
    tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    postgres = None
    if store == "postgres":
        if unavailable() is not None:
            pytest.skip(f"no private PostgreSQL: {unavailable()}")
        postgres = PrivatePostgres().init()
        postgres.start()
    redis_server = EmbeddedRedis(tmp_path / "redis", fsync="always").start()
    token = secrets.token_hex(16)
    database_url = postgres.url if postgres else f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    env = settings_env(
        tmp_path / "workers",
        redis_server.url,
        database_url,
        ADUAN_QUEUE=f"faults-{secrets.token_hex(3)}",
        ADUAN_TWILIO_AUTH_TOKEN=token,
        ADUAN_LOG_LEVEL="WARNING",
    )
    engine = make_engine(database_url)
    upgrade(engine)
    cluster = Cluster(tmp_path, env, redis_server)
    validator = RequestValidator(token)
    messages = sms_forms(MESSAGES, "Jalan rusak di gang {i}")
    acknowledged: set[str] = set()
    outcomes = {"retried": 0, "given_up": 0}
    begun = 0
    started = time.monotonic()
    try:
        for index in range(2):
            cluster.start_gateway(index)
            cluster.start_worker()
        timeout = aiohttp.ClientTimeout(total=15)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
            for port in cluster.ports:
                await healthy(client, port)
            cluster.started = time.monotonic()
            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def deliver(index: int, fields: dict[str, str]) -> None:
                nonlocal begun
                await asyncio.sleep(max(0.0, cluster.started + index / RATE - time.monotonic()))
                async with semaphore:
                    begun += 1
                    body = urlencode(fields)
                    for attempt in range(ATTEMPTS):
                        url = cluster.url((index + attempt) % 2)
                        headers = {
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Twilio-Signature": validator.compute_signature(url, fields),
                        }
                        try:
                            async with client.post(url, data=body, headers=headers) as response:
                                await response.read()
                                status = response.status
                        except (TimeoutError, aiohttp.ClientError):
                            status = 0
                        if status == 200:
                            acknowledged.add(fields["MessageSid"])
                            return
                        assert status == 0 or status >= 500, f"answered {status}"
                        outcomes["retried"] += 1
                        await asyncio.sleep(min(0.25 * 2**attempt, 4.0))
                    outcomes["given_up"] += 1

            faults = asyncio.create_task(inject_faults(cluster, client, lambda: begun))
            await asyncio.gather(*(deliver(i, m) for i, m in enumerate(messages)))
            await faults
        sending = time.monotonic() - started

        sent = [m["MessageSid"] for m in messages]
        # Wait while the queue still holds work (waiting, running, scheduled for a retry,
        # between queue and worker): only what is missing once it is all done is lost.
        deadline = time.monotonic() + SETTLE_WITHIN
        figures = measure(engine, sent, acknowledged)
        while time.monotonic() < deadline:
            complete = figures.lost == 0 and figures.cases_without_one_reply == 0
            if complete or not await asyncio.to_thread(queue_busy, redis_server.url, env):
                await asyncio.sleep(2)  # a duplicate still in flight would land by now
                figures = measure(engine, sent, acknowledged)
                break
            await asyncio.sleep(0.5)
            figures = measure(engine, sent, acknowledged)
        total = time.monotonic() - started
        alive = sum(1 for w in cluster.workers if w.poll() is None)
        cluster.note(f"workers alive at the end {alive}/{len(cluster.workers)}")
        with contextlib.suppress(redis.RedisError):
            queue = Queue(env["ADUAN_QUEUE"], connection=redis.Redis.from_url(redis_server.url))
            cluster.note(
                f"jobs waiting {queue.count}, started {queue.started_job_registry.count}, "
                f"scheduled {queue.scheduled_job_registry.count}, "
                f"failed {queue.failed_job_registry.count}, "
                f"between queue and worker {len(queue.intermediate_queue.get_job_ids())}"
            )
        report(request, f"{store}: {figures.line()}")
        report(
            request,
            f"  retries {outcomes['retried']}, given up {outcomes['given_up']}, "
            f"sending {sending:.1f}s, total {total:.1f}s; " + "; ".join(cluster.events),
        )
        assert figures.sent == MESSAGES
        assert figures.lost == 0, figures.line()
        assert figures.duplicated == 0, figures.line()
        assert figures.cases_without_one_reply == 0, (
            f"{figures.cases_without_one_reply} of {figures.cases} cases lack exactly one reply"
        )
    finally:
        cluster.stop()
        redis_server.stop()
        engine.dispose()
        if postgres is not None:
            postgres.remove()
