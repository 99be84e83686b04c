"""Providers failing: a real worker sends replies to fake Twilio, Graph API and mail relay
servers on loopback that answer 5xx, throttle, hang, or refuse for good.

What a reporter and an operator must be able to count on:

- a provider that fails for a while (5xx, 429, a timeout, a 4xx SMTP answer) delays the
  reply, with backoff, and the reply then goes out exactly once;
- a provider that refuses for good (invalid number, unsubscribed, template unknown,
  mailbox unknown) is asked once; the delivery is `failed` with the provider's code,
  never its words (they quote the number), and the operator sees it on the case page;
- a provider that never recovers: after the retries, `aduan failed list` shows the job,
  and `aduan failed requeue` sends the reply once the provider is back;
- a delivery no job will ever send (committed while the queue was down, or claimed by a
  worker that died mid-send) is found and sent by the sweep.

Retries here are one second apart (ADUAN_SEND_RETRY_INTERVALS=1,1: two retries) and a
provider that has not answered in two seconds has timed out (ADUAN_SEND_TIMEOUT=2).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import smtplib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import select

from gateway.app import Services, create_app
from gateway.smtp import SmtpIntake
from tests.conftest import ROOT, Stack, eventually
from tests.console.conftest import add_operator, login
from tests.fakes.graph_api import FakeGraph
from tests.fakes.server import Fault
from tests.fakes.smtp_relay import FakeRelay
from tests.fakes.stack import phone_number, provider_stack
from tests.fakes.twilio_api import FakeTwilio
from tests.test_meta_e2e import APP_SECRET, TEMPLATE, single
from tests.test_meta_e2e import post as post_whatsapp
from tests.test_twilio_e2e import SMS_FROM, recorded
from tests.test_twilio_e2e import post as post_twilio
from workers import models
from workers.context import Context
from workers.db import make_engine, session_factory
from workers.replies import STOPPED_WHILE_SENDING, job_key, requeue_stranded

Client = TestClient[Any, Any]
RETRY_INTERVALS = "1,1"
SEND_TIMEOUT = 2.0




@pytest.fixture(scope="module")
def relay() -> Iterator[FakeRelay]:
    fake = FakeRelay().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def faults_stack(
    redis_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    twilio_api: FakeTwilio,
    graph_api: FakeGraph,
    relay: FakeRelay,
) -> Iterator[Stack]:
    with provider_stack(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("faults"),
        **twilio_api.settings(SMS_FROM),
        ADUAN_META_APP_SECRET=APP_SECRET,
        ADUAN_META_VERIFY_TOKEN="verify-faults",
        ADUAN_META_ACCESS_TOKEN=graph_api.access_token,
        ADUAN_META_PHONE_NUMBER_ID=graph_api.phone_number_id,
        ADUAN_META_GRAPH_URL=graph_api.url,
        ADUAN_META_TEMPLATE_NAME=TEMPLATE,
        ADUAN_SMTP_RELAY=relay.address,
        ADUAN_SEND_RETRY_INTERVALS=RETRY_INTERVALS,
        ADUAN_SEND_TIMEOUT=str(SEND_TIMEOUT),
    ) as stack:
        yield stack


@pytest.fixture
async def services(faults_stack: Stack) -> AsyncIterator[Services]:
    found = faults_stack.services()
    yield found
    found.engine.dispose()  # no connection left open to hold up dropping the test schema


@pytest.fixture
async def gateway(services: Services) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(services), host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def mail_in(gateway: Client, services: Services) -> AsyncIterator[int]:
    """The gateway's SMTP intake, in this process, on a port of its own."""
    intake = SmtpIntake(services, port=0)
    await intake.start()
    yield intake.port
    await intake.stop()


class Store:
    """The case store as the worker left it."""

    def __init__(self, stack: Stack) -> None:
        self.engine = make_engine(stack.settings.effective_database_url)
        self.sessions = session_factory(self.engine)

    def case_id(self, provider_message_id: str) -> int | None:
        with self.sessions() as session:
            return session.scalar(
                select(models.Message.case_id).where(
                    models.Message.provider_message_id == provider_message_id
                )
            )

    def reply(self, provider_message_id: str) -> models.Delivery | None:
        """The first delivery answering the message with this provider id."""
        case_id = self.case_id(provider_message_id)
        if case_id is None:
            return None
        with self.sessions() as session:
            return session.scalar(
                select(models.Delivery)
                .where(models.Delivery.case_id == case_id)
                .order_by(models.Delivery.id)
                .limit(1)
            )

    def delivery(self, delivery_id: int) -> models.Delivery:
        with self.sessions() as session:
            found: models.Delivery = session.get_one(models.Delivery, delivery_id)
            return found


@pytest.fixture
def store(faults_stack: Stack) -> Iterator[Store]:
    found = Store(faults_stack)
    yield found
    found.engine.dispose()


class Jobs:
    """The stack's queue in Redis: the RQ job that sends a delivery."""

    def __init__(self, stack: Stack) -> None:
        self.queue_name = stack.settings.queue_name
        self.redis = redis.Redis.from_url(stack.env["REDIS_URL"])

    def key(self, delivery_id: int) -> str:
        return job_key(self.queue_name, delivery_id)

    def of(self, delivery_id: int) -> Job:
        """The job noted for this delivery when it was queued."""
        job_id = self.redis.get(self.key(delivery_id))
        assert isinstance(job_id, bytes), f"no job was noted for delivery {delivery_id}"
        return Job.fetch(job_id.decode(), connection=self.redis, serializer=JSONSerializer)


@pytest.fixture
def jobs(faults_stack: Stack) -> Iterator[Jobs]:
    found = Jobs(faults_stack)
    yield found
    found.redis.close()


async def settled(store: Store, provider_message_id: str) -> models.Delivery:
    """The reply once it is done with: sent or failed, no longer queued or sending."""
    return await eventually(
        lambda: (d := store.reply(provider_message_id)) and d.status in ("sent", "failed") and d,
        within=20,
    )


async def sms_in(gateway: Client, stack: Stack, number: str, body: str | None = None) -> str:
    """An SMS from `number` through the signed Twilio webhook; its MessageSid."""
    fields = recorded("sms_text.form", From=number)
    sid = "SM" + secrets.token_hex(16)
    fields.update(MessageSid=sid, SmsMessageSid=sid, SmsSid=sid)
    if body is not None:
        fields["Body"] = body
    response = await post_twilio(gateway, stack, "/webhooks/twilio", fields)
    assert response.status == 200
    return sid


def aduan(stack: Stack, *args: str) -> str:
    """Run the `aduan` command line against this stack; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **stack.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# Passing trouble: retried with backoff, sent exactly once.


async def test_twilio_500_then_503_is_retried_with_backoff_and_sent_once(
    gateway: Client,
    faults_stack: Stack,
    twilio_api: FakeTwilio,
    store: Store,
    jobs: Jobs,
) -> None:
    number = phone_number()
    twilio_api.fail_next(
        FakeTwilio.error(500, 20500, "Internal Server Error"),
        # Retry-After keeps the second wait a second long at least, for the test to see.
        FakeTwilio.error(503, 20503, "Service Unavailable", retry_after=2),
        to=number,
    )
    sid = await sms_in(gateway, faults_stack, number)

    # Between the tries the operator can see why the reply has not gone yet, and the job
    # waits its interval in RQ's schedule: backoff, not a tight loop.
    def between_tries() -> models.Delivery | None:
        found = store.reply(sid)
        if found is None or found.status != "queued" or found.attempts < 1:
            return None
        return found if jobs.of(found.id).get_status() == "scheduled" else None

    waiting = await eventually(between_tries, within=15)
    assert waiting.error in ("twilio 20500 (HTTP 500)", "twilio 20503 (HTTP 503)")

    delivery = await settled(store, sid)
    assert delivery.status == "sent"
    assert delivery.attempts == 3
    assert delivery.error is None
    [accepted] = twilio_api.accepted(number)
    assert delivery.provider_id == accepted["Sid"]
    tries = [r for r in twilio_api.received("POST", "/Messages.json") if r.form["To"] == number]
    assert len(tries) == 3


async def test_twilio_throttling_429_waits_as_long_as_retry_after_asks(
    gateway: Client, faults_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    number = phone_number()
    twilio_api.fail_next(
        FakeTwilio.error(429, 20429, "Too Many Requests", retry_after=4), to=number
    )
    sid = await sms_in(gateway, faults_stack, number)

    delivery = await settled(store, sid)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 2, None)
    assert len(twilio_api.accepted(number)) == 1
    first, second = [
        r for r in twilio_api.received("POST", "/Messages.json") if r.form["To"] == number
    ]
    # The retry interval is 1 s (2 s at most, with the scheduler's polling); Twilio asked
    # for 4 (3 at least: RQ keeps the time of a scheduled retry in whole seconds).
    assert second.at - first.at >= 2.9


async def test_twilio_refusing_the_credentials_is_retried_not_failed_for_good(
    gateway: Client, faults_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    # Every reply would fail alike until an operator fixes the credentials: they are
    # retried (and after the retries wait for `aduan failed requeue`), not failed for good.
    number = phone_number()
    twilio_api.fail_next(FakeTwilio.error(401, 20003, "Authenticate"), to=number)
    sid = await sms_in(gateway, faults_stack, number)

    delivery = await settled(store, sid)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 2, None)
    assert len(twilio_api.accepted(number)) == 1


async def test_a_twilio_timeout_is_retried_and_the_reply_sent_once(
    gateway: Client, faults_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    number = phone_number()
    # Twilio holds the first request twice as long as aduan waits for an answer.
    twilio_api.fail_next(Fault(delay=2 * SEND_TIMEOUT), to=number)
    sid = await sms_in(gateway, faults_stack, number)

    delivery = await settled(store, sid)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 2, None)
    log = await asyncio.to_thread(Path(faults_stack.worker_log).read_text)
    assert f"delivery {delivery.id} on sms not sent: twilio unreachable (ReadTimeout)" in log
    # Once the held request is answered too (to nobody), still exactly one message.
    await eventually(lambda: twilio_api.abandoned(number), within=3 * SEND_TIMEOUT)
    [accepted] = twilio_api.accepted(number)
    assert delivery.provider_id == accepted["Sid"]


async def test_meta_throttling_answered_with_http_400_is_retried_not_failed(
    gateway: Client, graph_api: FakeGraph, store: Store
) -> None:
    # Meta answers most of its throttling errors with HTTP 400: 130429 is not a refusal.
    number = phone_number()
    graph_api.fail_next(FakeGraph.error_fault(130429, "Rate limit hit"), to=number.lstrip("+"))
    payload = single(number, "Lampu lalu lintas mati di Jl. Juanda", int(time.time()))
    assert (await post_whatsapp(gateway, payload)).status == 200
    wamid = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]

    delivery = await settled(store, wamid)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 2, None)
    [accepted] = graph_api.accepted(number.lstrip("+"))
    assert accepted["type"] == "text"


async def test_a_relay_answering_451_is_retried_then_the_mail_sent_once(
    mail_in: int, relay: FakeRelay, store: Store
) -> None:
    sender = f"warga.{secrets.token_hex(4)}@example.org"
    relay.refuse_next(sender, "451 4.3.0 Mail server temporarily rejected message")
    message_id = await mail_to_aduan(mail_in, sender)

    delivery = await settled(store, message_id)
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 2, None)
    [relayed] = relay.accepted(sender)
    assert relayed.message["Message-ID"] == delivery.provider_id
    assert relay.tried(sender) == 2


# Refused for good: one attempt, the code recorded, shown, never retried.


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (21211, "The 'To' number {number} is not a valid phone number."),
        (21610, "Attempt to send to unsubscribed recipient {number}"),
    ],
)
async def test_a_twilio_refusal_fails_the_reply_once_and_the_case_page_shows_it(
    gateway: Client,
    faults_stack: Stack,
    twilio_api: FakeTwilio,
    store: Store,
    jobs: Jobs,
    code: int,
    words: str,
) -> None:
    number = phone_number()
    twilio_api.fail_next(FakeTwilio.error(400, code, words.format(number=number)), to=number)
    sid = await sms_in(gateway, faults_stack, number)

    delivery = await settled(store, sid)
    assert delivery.status == "failed"
    assert delivery.error == f"twilio {code} (HTTP 400)"  # the code, not Twilio's words
    assert delivery.attempts == 1
    assert twilio_api.accepted(number) == []
    assert len([m for m in twilio_api.sent() if m["To"] == number]) == 1
    # The job is done with it: finished, not failed, nothing scheduled to try again.
    assert jobs.of(delivery.id).get_status() == "finished"
    log = await asyncio.to_thread(Path(faults_stack.worker_log).read_text)
    assert number not in log and number.lstrip("+") not in log

    # The operator sees it on the case page, with the reason.
    username = await asyncio.to_thread(add_operator, faults_stack, "operator")
    assert (await login(gateway, username)).status == 303
    page = await gateway.get(f"/console/cases/{delivery.case_id}")
    assert page.status == 200
    html = await page.text()
    assert "delivery-failed" in html
    assert f"twilio {code} (HTTP 400)" in html
    failed_list = await (await gateway.get("/console/outbox?status=failed")).text()
    assert f"twilio {code} (HTTP 400)" in failed_list


async def test_meta_refusing_the_fallback_template_fails_the_reply_once(
    gateway: Client, graph_api: FakeGraph, store: Store, jobs: Jobs
) -> None:
    # Meta says the 24-hour window is closed; the template aduan falls back to does not
    # exist (any more) either.
    number = phone_number()
    to = number.lstrip("+")
    graph_api.fail_next(
        FakeGraph.error_fault(131047, "Re-engagement message"),
        FakeGraph.error_fault(132001, "Template name does not exist in the translation"),
        to=to,
    )
    payload = single(number, "Saluran air tersumbat di Jl. Veteran", int(time.time()))
    assert (await post_whatsapp(gateway, payload)).status == 200
    wamid = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]

    delivery = await settled(store, wamid)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == "meta 132001 (HTTP 400)"
    tried = [m for m in graph_api.sent() if m["to"] == to]
    assert [m["type"] for m in tried] == ["text", "template"]
    assert graph_api.accepted(to) == []
    assert jobs.of(delivery.id).get_status() == "finished"


async def test_a_relay_answering_550_fails_the_mail_reply_once(
    mail_in: int, relay: FakeRelay, store: Store, jobs: Jobs
) -> None:
    sender = f"warga.{secrets.token_hex(4)}@example.org"
    relay.refuse_always(sender, f"550 5.1.1 <{sender}>: Recipient address rejected")
    message_id = await mail_to_aduan(mail_in, sender)

    delivery = await settled(store, message_id)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == "relay refused the recipient [550]"
    assert relay.tried(sender) == 1 and relay.accepted(sender) == []
    assert jobs.of(delivery.id).get_status() == "finished"


# Never recovering: given up after the retries, listed, requeued by hand.


async def test_a_reply_given_up_on_is_listed_and_sent_once_requeued(
    gateway: Client,
    faults_stack: Stack,
    twilio_api: FakeTwilio,
    store: Store,
    jobs: Jobs,
) -> None:
    number = phone_number()
    twilio_api.fail_always(FakeTwilio.error(500, 20500, "Internal Server Error"), to=number)
    sid = await sms_in(gateway, faults_stack, number)

    delivery = await settled(store, sid)
    assert delivery.status == "failed"
    assert delivery.attempts == 3  # the first try and both retries
    assert delivery.error == "gave up after 3 attempts: twilio 20500 (HTTP 500)"
    job = jobs.of(delivery.id)
    await eventually(lambda: job.get_status(refresh=True) == "failed")

    listed = await asyncio.to_thread(aduan, faults_stack, "failed", "list")
    [line] = [line for line in listed.splitlines() if line.startswith(job.id)]
    assert "send_deliveries" in line
    assert f"delivery {delivery.id}: twilio 20500 (HTTP 500)" in line
    assert number not in listed

    twilio_api.recover(number)
    requeued = await asyncio.to_thread(aduan, faults_stack, "failed", "requeue", job.id)
    assert f"requeued {job.id}" in requeued
    sent = await eventually(
        lambda: (d := store.delivery(delivery.id)).status == "sent" and d, within=15
    )
    assert (sent.attempts, sent.error) == (4, None)
    [accepted] = twilio_api.accepted(number)
    assert sent.provider_id == accepted["Sid"]
    await eventually(lambda: job.get_status(refresh=True) == "finished")
    assert job.id not in await asyncio.to_thread(aduan, faults_stack, "failed", "list")


# Stranded: no job will ever send it, until the sweep finds it.


async def test_deliveries_no_job_will_send_are_found_and_sent_by_the_sweep_at_most_once(
    gateway: Client,
    faults_stack: Stack,
    twilio_api: FakeTwilio,
    store: Store,
    jobs: Jobs,
) -> None:
    number = phone_number()
    sid = await sms_in(gateway, faults_stack, number)
    first = await settled(store, sid)
    assert first.status == "sent"

    # Backdated far enough that no other test's delivery in a shared store qualifies.
    long_ago = datetime.now(UTC) - timedelta(days=60)

    def add(status: str, body: str, updated_at: datetime) -> int:
        with store.sessions() as session, session.begin():
            row = models.Delivery(
                dedupe_key=f"faults-{secrets.token_hex(8)}",
                case_id=first.case_id,
                reporter_id=first.reporter_id,
                channel="sms",
                kind="reply",
                language="id",
                body=body,
                status=status,
                attempts=0,
                created_at=updated_at,
                updated_at=updated_at,
            )
            session.add(row)
            session.flush()
            return row.id

    # Committed while the queue was down: never enqueued.
    never_queued = add("queued", "Balasan yang tertinggal di antrean", long_ago)
    # Claimed by a worker that died before the provider answered.
    orphaned = add("sending", "Balasan yang terputus saat dikirim", long_ago)
    # Queued long ago, but its job is still there (waiting behind a long queue, say).
    waiting = add("queued", "Balasan yang menunggu gilirannya", long_ago)
    jobs.redis.set(jobs.key(waiting), jobs.of(first.id).id)

    context = Context(faults_stack.settings, faults_stack.env["REDIS_URL"])
    try:
        found = await asyncio.to_thread(
            requeue_stranded,
            context,
            stranded_after=timedelta(days=30),
            sending_stale_after=timedelta(days=30),
        )
    finally:
        context.engine.dispose()
    assert found == [never_queued]
    # Interrupted mid-send, it may have gone out: shown as failed, never sent twice.
    interrupted = store.delivery(orphaned)
    assert interrupted.status == "failed"
    assert interrupted.error == STOPPED_WHILE_SENDING

    for delivery_id in found:

        def sent(i: int = delivery_id) -> bool:
            return store.delivery(i).status == "sent"

        await eventually(sent)
    bodies = {m["Body"] for m in twilio_api.accepted(number)}
    assert len(twilio_api.accepted(number)) == 2
    assert "Balasan yang tertinggal di antrean" in bodies
    assert "Balasan yang terputus saat dikirim" not in bodies
    assert store.delivery(waiting).status == "queued"


async def mail_to_aduan(port: int, sender: str) -> str:
    """A complaint by mail through the SMTP intake; its Message-ID without brackets."""
    message = EmailMessage()
    message["From"] = f"Warga Bogor <{sender}>"
    message["To"] = "aduan@localhost"
    message["Subject"] = "Jalan rusak"
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content("Jalan berlubang di Jl. Pajajaran, sudah dua minggu.")

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
            client.send_message(message)

    await asyncio.to_thread(send)
    return str(message["Message-ID"]).strip("<>")
