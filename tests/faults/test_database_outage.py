"""The case store goes away (PostgreSQL stopped) while complaints arrive, and comes back.

Gateways do not need the database to acknowledge a webhook: the complaint is claimed and
queued in Redis. The store jobs that run while PostgreSQL is down fail, RQ retries them
with backoff (gateway.intake.STORE_RETRY), and once PostgreSQL answers again every
acknowledged complaint is stored exactly once and answered exactly once. The server is a
PostgreSQL of the test's own (tests/faults/postgres.py): the machine's is shared.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from gateway.embedded import EmbeddedRedis
from tests.conftest import settings_env
from tests.faults.postgres import PrivatePostgres, unavailable
from tests.faults.test_fault_injection import Cluster, healthy, measure, report, sms_forms
from workers.db import make_engine, upgrade

MESSAGES = 300
RATE = 60.0
OUTAGE_AFTER = 80  # messages sent before PostgreSQL is stopped
OUTAGE_SECONDS = 6.0

pytestmark = pytest.mark.skipif(
    unavailable() is not None, reason=f"no private PostgreSQL: {unavailable()}"
)


async def test_store_jobs_wait_out_a_stopped_postgresql_and_lose_nothing(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres = PrivatePostgres().init()
    postgres.start()
    redis_server = EmbeddedRedis(tmp_path / "redis", fsync="always").start()
    token = secrets.token_hex(16)
    env = settings_env(
        tmp_path / "workers",
        redis_server.url,
        postgres.url,
        ADUAN_QUEUE=f"dbdown-{secrets.token_hex(3)}",
        ADUAN_TWILIO_AUTH_TOKEN=token,
        ADUAN_LOG_LEVEL="INFO",
    )
    engine = make_engine(postgres.url)
    upgrade(engine)
    cluster = Cluster(tmp_path, env, redis_server)
    validator = RequestValidator(token)
    messages = sms_forms(MESSAGES, "Lampu jalan mati di gang {i}")
    acknowledged: set[str] = set()
    readiness: list[int] = []
    try:
        cluster.start_gateway(0)
        cluster.start_worker()
        cluster.start_worker()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as client:
            await healthy(client, cluster.ports[0])
            cluster.started = time.monotonic()
            url = cluster.url(0)

            async def deliver(index: int, fields: dict[str, str]) -> None:
                await asyncio.sleep(max(0.0, cluster.started + index / RATE - time.monotonic()))
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": validator.compute_signature(url, fields),
                }
                async with client.post(url, data=urlencode(fields), headers=headers) as answer:
                    await answer.read()
                    assert answer.status == 200, f"answered {answer.status} during the outage"
                acknowledged.add(fields["MessageSid"])

            async def outage() -> None:
                await asyncio.sleep(OUTAGE_AFTER / RATE)
                await asyncio.to_thread(postgres.stop)
                cluster.note("PostgreSQL stopped")
                ready = f"http://127.0.0.1:{cluster.ports[0]}/readyz"
                async with client.get(ready) as answer:
                    readiness.append(answer.status)
                await asyncio.sleep(OUTAGE_SECONDS)
                await asyncio.to_thread(postgres.start)
                cluster.note("PostgreSQL started again")
                async with client.get(ready) as answer:
                    readiness.append(answer.status)

            down = asyncio.create_task(outage())
            await asyncio.gather(*(deliver(i, m) for i, m in enumerate(messages)))
            await down
        sent = [m["MessageSid"] for m in messages]
        figures = measure(engine, sent, acknowledged)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (figures.lost or figures.cases_without_one_reply):
            await asyncio.sleep(0.5)
            figures = measure(engine, sent, acknowledged)
        await asyncio.sleep(2)  # a duplicate still in flight would land by now
        figures = measure(engine, sent, acknowledged)
        report(request, "database outage: " + figures.line())
        report(request, "  " + "; ".join(cluster.events))
        worker_logs = "".join(
            (tmp_path / f"worker{i}.log").read_text(errors="replace") for i in range(2)
        )
        assert readiness == [503, 200], "readyz must report the database down, then up"
        # The outage was real: store jobs failed while it lasted, and were retried.
        assert "OperationalError" in worker_logs
        assert not any(m["From"] in worker_logs for m in messages), "a number was logged"
        assert figures.acknowledged == MESSAGES
        assert figures.lost == 0, figures.line()
        assert figures.duplicated == 0, figures.line()
        assert figures.cases_without_one_reply == 0
    finally:
        cluster.stop()
        redis_server.stop()
        engine.dispose()
        postgres.remove()
