"""One gateway for all the fuzz tests: the real app on loopback, the real SMTP intake,
real Redis, no worker.

Hypothesis drives plain (sync) test functions; every request runs on one event loop kept
for the whole package, so the app and the SMTP server start once and each hypothesis
example sends a batch of generated inputs concurrently. Without a worker the queue only
fills: it has a name of its own and is emptied (with the idempotency claims) after each
test. ERROR records from aduan's loggers (and from aiohttp's and asyncio's, which report
what escaped a handler) are collected so that each test can assert there were none.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from rq import Queue
from rq.serializers import JSONSerializer

from config.settings import load_settings
from gateway.app import Services, build_services, create_app
from gateway.smtp import SmtpIntake
from tests.channels.harness import SECRETS
from tests.conftest import settings_env

T = TypeVar("T")
PUBLIC_URL = "http://testserver.local"
WATCHED_LOGGERS = ("aduan", "aiohttp.server", "aiohttp.web", "asyncio", "mail.log")
INPUTS_PER_ENTRY_POINT = 10_000


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def describe(self) -> str:
        lines = []
        for record in self.records[:10]:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
            lines.append(text)
        return "\n".join(lines)


@dataclass
class Gateway:
    loop: asyncio.AbstractEventLoop
    client: TestClient[Any, Any]
    services: Services
    smtp: SmtpIntake
    redis_url: str
    queue_name: str
    errors: ErrorRecords
    sent: dict[str, int] = field(default_factory=dict)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def count(self, entry_point: str, n: int) -> None:
        self.sent[entry_point] = self.sent.get(entry_point, 0) + n

    def clean_queue(self) -> None:
        """Forget what the gateway queued: the jobs, and the claims that make retries dupes."""
        connection = redis.Redis.from_url(self.redis_url)
        try:
            Queue(self.queue_name, connection=connection, serializer=JSONSerializer).empty()
            batch = []
            for key in connection.scan_iter("aduan:claim:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    connection.delete(*batch)
                    batch.clear()
            if batch:
                connection.delete(*batch)
        finally:
            connection.close()


@pytest.fixture(scope="package")
def gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    queue_name = f"fuzz-{secrets.token_hex(4)}"
    env = settings_env(
        tmp,
        redis_url,
        f"sqlite:///{tmp / 'unused.sqlite3'}",
        ADUAN_QUEUE=queue_name,
        ADUAN_PUBLIC_URL=PUBLIC_URL,
        ADUAN_ACK_WAIT="0.1",  # no worker: the shortest wait for a ticket the settings allow
        ADUAN_RATE_LIMITS="ip=0/60,web=0/60,api=0/60,sms=0/60,whatsapp=0/60,email=0/60",
        ADUAN_SMTP_PORT="0",
        ADUAN_SMTP_HOST="127.0.0.1",
        ADUAN_LOG_LEVEL="INFO",
        **SECRETS,
    )
    settings = load_settings(env)
    loop = asyncio.new_event_loop()
    services = build_services(settings, redis_url)
    errors = ErrorRecords()
    watched = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    for logger in watched:
        logger.addHandler(errors)
    smtp = SmtpIntake(services)

    async def start() -> TestClient[Any, Any]:
        started: TestClient[Any, Any] = TestClient(
            TestServer(create_app(services), host="127.0.0.1")
        )
        await started.start_server()
        await smtp.start()
        return started

    client = loop.run_until_complete(start())
    gw = Gateway(loop, client, services, smtp, redis_url, queue_name, errors)
    try:
        yield gw
    finally:

        async def stop() -> None:
            await smtp.stop(grace=2)
            await client.close()

        loop.run_until_complete(stop())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        services.engine.dispose()
        gw.clean_queue()
        for logger in watched:
            logger.removeHandler(errors)


@pytest.fixture
def gw(gateway: Gateway) -> Iterator[Gateway]:
    """The package's gateway, with the ERROR records of this test only, and a clean queue."""
    gateway.errors.records.clear()
    yield gateway
    gateway.clean_queue()


def no_errors_logged(gw: Gateway) -> None:
    assert not gw.errors.records, f"ERROR records were logged:\n{gw.errors.describe()}"


def gather_limited(
    jobs: list[Callable[[], Awaitable[T]]], concurrency: int = 32
) -> Awaitable[list[T]]:
    slots = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await job()

    async def every() -> list[T]:
        return list(await asyncio.gather(*(one(j) for j in jobs)))

    return every()


# --- strategies shared by the tests -------------------------------------------------------

FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,  # nothing written under the project; failures print their reproducer
    suppress_health_check=list(HealthCheck),
    print_blob=True,
    phases=[Phase.explicit, Phase.generate],  # batches of 50 take minutes to shrink
)

# Text from every Unicode plane (no surrogates: they cannot be sent), weighted to the odd.
ODD_CHARS = st.characters(codec="utf-8")
odd_text = st.text(ODD_CHARS, max_size=40) | st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\r\n",
        "\u202e\u200b\ufeff",
        "ﷺ🏳️‍🌈𝕏",
        "Jalan berlubang di Jl. Pajajaran",
        "STATUS BGR-2026-004217-3",
        "pungli di kantor kelurahan",
        "<b>html</b><script>x</script>",
        "> quoted\n-- \nsig",
        "+6281234567890",
        "whatsapp:+6281234567890",
        "budi@example.org",
    ]
)


def huge(alphabet: str = "aé€😀 \n") -> st.SearchStrategy[str]:
    """A long run of one character: big inputs without big generation cost."""
    return st.builds(
        lambda c, n: c * n,
        st.sampled_from(list(alphabet)),
        st.sampled_from([0, 1, 255, 4097, 5001, 20_001, 70_000]),
    )


any_text = odd_text | huge()
EDGE_NUMBERS = st.sampled_from(
    [0, -0.0, 1e308, -1e308, 1e-320, 90, 90.0000001, -180, 10**20, 10**400, -(10**400)]
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | EDGE_NUMBERS
    | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4)
    ),
    max_leaves=8,
)
random_bytes = st.binary(max_size=300) | st.sampled_from(
    [b"", b"\xff\xfe\x00", b"{", b"[]", b"null", b'{"text": NaN}', b"\x00" * 1000]
)
