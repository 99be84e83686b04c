"""Real services for the tests: Redis (the machine's, or our own), SQLite, PostgreSQL.

Tests never touch data they did not create: Redis runs in a database number of its
own (marked as ours before anything is written), PostgreSQL in a schema of its own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Settings, load_settings
from gateway.app import Services, build_services, create_app
from gateway.embedded import EmbeddedRedis
from tests.fakes.graph_api import FakeGraph
from tests.fakes.twilio_api import FakeTwilio
from workers.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
OWNER_KEY = "aduan-tests:owner"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _owner_gone(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _redis_answers("redis://127.0.0.1:6379/0"):
        marker = f"{socket.gethostname()}:{os.getpid()}"
        for db in range(10, 16):
            url = f"redis://127.0.0.1:6379/{db}"
            client = redis.Redis.from_url(url)
            owner = client.get(OWNER_KEY)
            # Take an empty database, or one left by a test session that has ended;
            # never one another running session (or anyone else) is using.
            if client.dbsize() == 0 or (owner is not None and _owner_gone(owner.decode())):
                if not client.set(OWNER_KEY, marker, nx=client.dbsize() == 0):
                    continue
                client.flushdb()
                client.set(OWNER_KEY, marker)
                yield url
                client.flushdb()
                return
        pytest.exit("Redis on 127.0.0.1:6379 has no free database 10-15 for the tests.")
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"), fsync="no").start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=2):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL on 127.0.0.1:5432 does not answer ({type(exc).__name__})"


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'cases.sqlite3'}"
        return
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    with pg_schema("aduan_test") as url:
        yield url


@contextlib.contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """A database URL for a PostgreSQL schema of the caller's own, dropped afterwards."""
    schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def settings_env(tmp: Path, redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        "ADUAN_DATA_DIR": str(tmp),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "ADUAN_SECRET_KEY": "test-secret-key-" + "x" * 16,
        "ADUAN_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "ADUAN_PUBLIC_URL": "http://testserver.local",
        "ADUAN_ACK_WAIT": "15",
        "ADUAN_LOG_LEVEL": "INFO",
        # Limits off unless a test is about them: the whole suite posts from 127.0.0.1.
        "ADUAN_RATE_LIMITS": "ip=0/60,web=0/60,api=0/60,sms=0/60,whatsapp=0/60,email=0/60",
    }
    env.update(extra)
    return env


@dataclass
class Stack:
    """A migrated case store, a queue and a running worker process."""

    env: dict[str, str]
    settings: Settings
    worker: subprocess.Popen[bytes]
    worker_log: Path

    def services(self) -> Services:
        return build_services(self.settings, self.env["REDIS_URL"])


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {**os.environ, **env}
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker"],
            env=full,
            cwd=ROOT,
            stdout=handle,
            stderr=handle,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def stack(
    redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    env = settings_env(tmp, redis_url, database_url, ADUAN_QUEUE=f"aduan-{secrets.token_hex(3)}")
    settings = load_settings(env)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    engine.dispose()
    log = tmp / "worker.log"
    worker = start_worker(env, log)
    try:
        yield Stack(env, settings, worker, log)
    finally:
        stop_process(worker)


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(stack.services())
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], Any], within: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


# The fake providers, one per test module that uses them (each starts an aiohttp server
# on a loopback port of its own in a thread).
@pytest.fixture(scope="module")
def twilio_api() -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def graph_api() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()
