"""A worker sends replies on a lane of their own (workers.worker.ReplyLane): a provider that
is slow, or does not answer until its timeout, holds up replies and nothing else.

Before the lane, one loop took reply jobs first and store jobs after them: while Twilio
took its time over one reply, no complaint behind it reached the case store, and the
operators on duty did not see them.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, select

from config.data import load_taxonomy
from config.settings import load_settings
from gateway.intake import STORE_JOB, STORE_JOB_TIMEOUT
from normalizer import Complaint, Rules
from tests.conftest import settings_env, start_worker, stop_process
from tests.fakes.server import Fault
from tests.fakes.stack import sms_complaint
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import messages_stored
from tests.test_twilio_e2e import SMS_FROM
from workers import models
from workers.db import make_engine, session_factory, upgrade
from workers.replies import SEND_GROUP
from workers.worker import LaneGate

# How long the fake Twilio API keeps the first reply waiting.
HOLD_SECONDS = 10.0


class _Setup:
    def __init__(
        self, tmp_path: Path, redis_url: str, database_url: str, twilio_api: FakeTwilio
    ) -> None:
        self.queue_name = f"lane-{secrets.token_hex(3)}"
        self.env = settings_env(
            tmp_path,
            redis_url,
            database_url,
            ADUAN_QUEUE=self.queue_name,
            ADUAN_SEND_TIMEOUT="60",  # the held reply is answered, not timed out
            **twilio_api.settings(SMS_FROM),
        )
        settings = load_settings(self.env)
        self.engine: Engine = make_engine(settings.effective_database_url)
        upgrade(self.engine)
        self.rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
        self.connection = redis.Redis.from_url(redis_url)
        self.queue = Queue(self.queue_name, connection=self.connection, serializer=JSONSerializer)
        self.log = tmp_path / "worker.log"

    def complaints(self, count: int, what: str) -> list[Complaint]:
        return [sms_complaint(self.rules, f"{what} di gang {i}") for i in range(count)]

    def enqueue(self, complaints: list[Complaint]) -> None:
        self.queue.enqueue(
            STORE_JOB, [c.to_dict() for c in complaints], job_timeout=STORE_JOB_TIMEOUT
        )

    def stored(self, complaints: list[Complaint]) -> int:
        return messages_stored(self.engine, [c.provider_message_id for c in complaints])

    def replies(self, complaint: Complaint) -> list[tuple[str, int]]:
        """(status, attempts) of each reply to this complaint's reporter."""
        with session_factory(self.engine)() as session:
            reporter = select(models.Message.reporter_id).where(
                models.Message.provider_message_id == complaint.provider_message_id
            )
            rows = session.execute(
                select(models.Delivery.status, models.Delivery.attempts).where(
                    models.Delivery.reporter_id.in_(reporter.scalar_subquery())
                )
            ).all()
        return [(str(status), int(attempts)) for status, attempts in rows]

    def close(self) -> None:
        self.connection.close()
        self.engine.dispose()


def _wait(check: Callable[[], Any], what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def _number(complaint: Complaint) -> str:
    return str(complaint.reporter.address)


def test_a_provider_that_holds_a_reply_does_not_hold_up_storing_complaints(
    tmp_path: Path, redis_url: str, database_url: str, twilio_api: FakeTwilio
) -> None:
    setup = _Setup(tmp_path, redis_url, database_url, twilio_api)
    [first] = setup.complaints(1, "Lampu jalan mati")
    twilio_api.fail_next(Fault(delay=HOLD_SECONDS), to=_number(first))
    worker = start_worker(setup.env, setup.log)
    try:
        setup.enqueue([first])
        # Its reply is with the provider, who takes its time answering.
        _wait(
            lambda: [m for m in twilio_api.sent() if m["To"] == _number(first)],
            "the first reply never reached the provider",
        )
        later = setup.complaints(15, "Sampah menumpuk")
        for start in range(0, len(later), 5):
            setup.enqueue(later[start : start + 5])
        _wait(lambda: setup.stored(later) == len(later), "the later complaints were not stored")
        # Stored while the first reply is still unanswered: nothing waited for it.
        assert not twilio_api.accepted(_number(first))
        # Every reporter gets one reply, the first one too once the provider answers.
        for complaint in [first, *later]:
            number = _number(complaint)
            _wait(lambda: twilio_api.accepted(number), f"no reply to {number}")  # noqa: B023
            _wait(lambda: setup.replies(complaint) == [("sent", 1)], "not recorded")  # noqa: B023
            assert len(twilio_api.accepted(number)) == 1
    finally:
        stop_process(worker)
        setup.close()
    assert worker.returncode == 0, setup.log.read_text()[-2000:]


def test_a_worker_told_to_stop_mid_send_records_the_reply_first(
    tmp_path: Path, redis_url: str, database_url: str, twilio_api: FakeTwilio
) -> None:
    """SIGTERM while a reply is with the provider: the worker waits for the answer and
    records the reply as sent before it exits, instead of leaving it `sending` (which the
    sweep would later have to mark "may have gone out")."""
    setup = _Setup(tmp_path, redis_url, database_url, twilio_api)
    [complaint] = setup.complaints(1, "Jalan berlubang")
    twilio_api.fail_next(Fault(delay=3.0), to=_number(complaint))
    worker = start_worker(setup.env, setup.log)
    try:
        setup.enqueue([complaint])
        _wait(
            lambda: [m for m in twilio_api.sent() if m["To"] == _number(complaint)],
            "the reply never reached the provider",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, setup.log.read_text()[-2000:]
        assert setup.replies(complaint) == [("sent", 1)]
        assert len(twilio_api.accepted(_number(complaint))) == 1
    finally:
        stop_process(worker)
        setup.close()


def test_a_slow_provider_gets_a_group_of_replies_from_each_busy_lane_at_once(
    tmp_path: Path, redis_url: str, database_url: str, twilio_api: FakeTwilio
) -> None:
    """With Twilio taking its time, three store batches of a flood have their replies out
    side by side: each lane sends a whole group at once. When the lanes shared one
    group's worth of threads, a worker never had more than SEND_GROUP replies out, and
    the rest waited for the provider to answer those first."""
    setup = _Setup(tmp_path, redis_url, database_url, twilio_api)
    batches = [setup.complaints(40, f"Banjir setinggi lutut {i}") for i in range(3)]
    numbers = {_number(c) for batch in batches for c in batch}
    twilio_api.fail_always(Fault(delay=2.0))  # answers as usual, two seconds later
    twilio_api.most_at_once = 0
    worker = start_worker(setup.env, setup.log)
    try:
        for batch in batches:
            setup.enqueue(batch)
        _wait(
            lambda: len({m["To"] for m in twilio_api.accepted() if m["To"] in numbers}) == 120,
            "not every reply reached the provider",
        )
        assert twilio_api.most_at_once > SEND_GROUP
        assert len([m for m in twilio_api.sent() if m["To"] in numbers]) == 120  # once each
    finally:
        twilio_api.recover()
        stop_process(worker)
        setup.close()


def test_a_further_lane_takes_jobs_only_while_the_ones_before_it_are_busy() -> None:
    """With a provider that answers at once, the first lane keeps up and the others stay
    out of the way of the storing; while lanes wait for a slow provider, the next opens."""
    gate = LaneGate()
    assert gate.wait_open(0, 0)
    assert not gate.wait_open(1, 0)
    with gate.working():
        assert gate.wait_open(1, 0)
        assert not gate.wait_open(2, 0)
        opened = threading.Event()

        def second_lane() -> None:
            if gate.wait_open(2, 10):
                opened.set()

        waiting = threading.Thread(target=second_lane)
        waiting.start()
        with gate.working():  # a second job: lane 2 opens, without waiting out its slice
            waiting.join(5)
            assert opened.is_set()
    assert not gate.wait_open(1, 0)  # both jobs done: only the first lane again
