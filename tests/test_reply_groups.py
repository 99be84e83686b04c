"""A reply job sends its deliveries in groups, at once: a provider that takes a second to
answer must not make the eighth reporter of a batch wait eight seconds for a ticket."""

from __future__ import annotations

import time
from pathlib import Path

from config.data import load_taxonomy
from config.settings import load_settings
from normalizer import Rules
from tests.conftest import settings_env
from tests.fakes.server import Fault
from tests.fakes.stack import sms_complaint
from tests.fakes.twilio_api import FakeTwilio
from tests.test_twilio_e2e import SMS_FROM
from workers import models
from workers.context import Context, install
from workers.db import upgrade
from workers.replies import SEND_GROUP, send_deliveries
from workers.store import store


def test_a_slow_provider_gets_a_jobs_replies_together_and_each_once(
    tmp_path: Path,
    redis_url: str,
    database_url: str,
    twilio_api: FakeTwilio,
) -> None:
    env = settings_env(
        tmp_path,
        redis_url,
        database_url,
        **twilio_api.settings(SMS_FROM),
    )
    settings = load_settings(env)
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    count = SEND_GROUP + 2  # a whole group and part of the next
    complaints = [sms_complaint(rules, f"Lampu jalan mati di gang {i}") for i in range(count)]
    try:
        install(context)  # as a worker does, for the job to find
        ids = [i for outcome in store(context, complaints) for i in outcome.deliveries]
        assert len(ids) == count
        # Every request is answered, normally, after a second.
        twilio_api.fail_next(*[Fault(delay=1.0)] * count)
        started = time.monotonic()
        assert send_deliveries(ids) == {"sent": count}
        elapsed = time.monotonic() - started
        # One group after the other, each sent at once: about 2 s, where one reply at a
        # time would take 10 s.
        assert elapsed < 5, elapsed
        numbers = {str(c.reporter.address) for c in complaints}
        assert sorted(m["To"] for m in twilio_api.accepted() if m["To"] in numbers) == sorted(
            numbers
        )
        with context.sessions() as session:
            rows = [session.get(models.Delivery, i) for i in ids]
            assert {(r.status, r.attempts) for r in rows if r is not None} == {("sent", 1)}
        # Run again (a retried job): nothing goes out twice.
        assert send_deliveries(ids) == {"skipped": count}
        assert len([m for m in twilio_api.accepted() if m["To"] in numbers]) == count
    finally:
        install(None)
        context.engine.dispose()
