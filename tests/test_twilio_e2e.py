"""Twilio end to end: signed webhooks in, a real worker, replies out to a fake Twilio API."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from channels.sms import is_gsm7
from gateway.app import create_app
from gateway.intake import CLAIM_PENDING_SECONDS, CLAIM_STALLED_SECONDS, claim_key
from normalizer import idempotency_key
from tests.channels.harness import TESTDATA
from tests.conftest import ROOT, Stack, eventually, free_port, settings_env
from tests.fakes.stack import phone_number, provider_stack
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import dump_database, png_bytes
from workers import models
from workers.db import make_engine, session_factory

Client = TestClient[Any, Any]
SMS_FROM = "+14155550100"
WHATSAPP_FROM = "whatsapp:+14155238886"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


@pytest.fixture(scope="module")
def twilio_stack(
    redis_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    twilio_api: FakeTwilio,
) -> Iterator[Stack]:
    with provider_stack(
        redis_url,
        database_url,
        tmp_path_factory.mktemp("twilio"),
        **twilio_api.settings(SMS_FROM, WHATSAPP_FROM),
    ) as stack:
        yield stack


@pytest.fixture
async def gateway(twilio_stack: Stack) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(twilio_stack.services()), host="127.0.0.1")) as c:
        yield c


def recorded(name: str, **fields: str) -> dict[str, str]:
    values = dict(parse_qsl((TESTDATA / "twilio" / name).read_text().strip()))
    sid = ("MM" if "MediaUrl0" in values else "SM") + secrets.token_hex(16)
    values.update(MessageSid=sid, SmsMessageSid=sid, SmsSid=sid)
    values.update(fields)
    return values


async def post(
    client: Client, stack: Stack, path: str, fields: dict[str, str], **headers: str
) -> Any:
    url = f"{stack.settings.public_url}{path}"
    token = stack.settings.twilio_auth_token or ""
    signature = RequestValidator(token).compute_signature(url, fields)
    return await client.post(
        path,
        data=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            **headers,
        },
    )


class Store:
    def __init__(self, stack: Stack) -> None:
        self.engine = make_engine(stack.settings.effective_database_url)
        self.sessions = session_factory(self.engine)

    def case_of(self, provider_message_id: str) -> models.Case | None:
        with self.sessions() as session:
            message = session.scalar(
                select(models.Message).where(
                    models.Message.provider_message_id == provider_message_id
                )
            )
            if message is None or message.case is None:
                return None
            case = message.case
            session.expunge_all()
            return case

    def attachments_of(self, provider_message_id: str) -> list[models.Attachment]:
        with self.sessions() as session:
            message = session.scalar(
                select(models.Message).where(
                    models.Message.provider_message_id == provider_message_id
                )
            )
            found = list(message.attachments) if message else []
            session.expunge_all()
            return found

    def sent_reply(self, case_id: int) -> models.Delivery | None:
        with self.sessions() as session:
            return session.scalar(
                select(models.Delivery).where(
                    models.Delivery.case_id == case_id,
                    models.Delivery.status.not_in(("queued", "sending")),
                )
            )

    def delivery(self, provider_id: str) -> models.Delivery | None:
        with self.sessions() as session:
            return session.scalar(
                select(models.Delivery).where(models.Delivery.provider_id == provider_id)
            )


@pytest.fixture
def store(twilio_stack: Stack) -> Iterator[Store]:
    found = Store(twilio_stack)
    yield found
    found.engine.dispose()


def replies_to(api: FakeTwilio, to: str) -> list[dict[str, str]]:
    return [m for m in api.sent() if m.get("To") == to]


async def test_a_signed_sms_becomes_a_case_and_the_ticket_goes_back_by_sms(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    number = phone_number()
    fields = recorded("sms_text.form", From=number)
    started = time.monotonic()
    response = await post(gateway, twilio_stack, "/webhooks/twilio", fields)
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert await response.text() == EMPTY_TWIML
    assert time.monotonic() - started < 2  # acknowledged once queued, not once stored

    case = await eventually(lambda: store.case_of(fields["MessageSid"]))
    assert case.channel == "sms"
    assert case.topic == "infrastruktur"
    [reply] = await eventually(lambda: replies_to(twilio_api, number))
    assert reply["From"] == SMS_FROM
    assert case.ticket in reply["Body"]
    assert reply["Body"].startswith("Aduan Anda diterima")  # the reporter wrote Indonesian
    assert len(reply["Body"]) <= 160 and is_gsm7(reply["Body"])  # one SMS segment
    assert reply["StatusCallback"] == "http://testserver.local/webhooks/twilio/status"

    # Twilio reports the reply delivered; a late "sent" does not move it back.
    delivery = await eventually(lambda: store.sent_reply(case.id))
    assert delivery.status == "sent"
    assert delivery.provider == "twilio"
    assert str(delivery.provider_id).startswith("SM")
    for status in ("delivered", "sent"):
        callback = recorded(
            "status_delivered.form",
            MessageSid=str(delivery.provider_id),
            SmsSid=str(delivery.provider_id),
            MessageStatus=status,
            SmsStatus=status,
            To=number,
        )
        answer = await post(gateway, twilio_stack, "/webhooks/twilio/status", callback)
        assert answer.status == 204
    await eventually(
        lambda: (found := store.delivery(str(delivery.provider_id))) and found.status == "delivered"
    )
    await asyncio.sleep(0.3)
    after = store.delivery(str(delivery.provider_id))
    assert after is not None and after.status == "delivered"


async def test_a_whatsapp_photo_with_a_location_is_stored_with_its_bytes_and_place(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    number = phone_number()
    photo = png_bytes(8, 6)
    message_sid, media_sid = "MM" + secrets.token_hex(16), "ME" + secrets.token_hex(16)
    twilio_api.media[media_sid] = (photo, "image/png")
    fields = recorded(
        "whatsapp_photo_location.form",
        From=f"whatsapp:{number}",
        WaId=number.lstrip("+"),
        MessageSid=message_sid,
        SmsMessageSid=message_sid,
        SmsSid=message_sid,
        MediaUrl0=twilio_api.media_url(message_sid, media_sid),
        MediaContentType0="image/png",
    )
    response = await post(gateway, twilio_stack, "/webhooks/twilio", fields)
    assert response.status == 200

    case = await eventually(lambda: store.case_of(message_sid))
    assert case.channel == "whatsapp"
    assert (case.lat, case.lon) == (-6.6010583, 106.8061736)
    assert case.address == "Jl. Pajajaran, Bogor"
    assert case.location_label == "Depan Tugu Kujang"
    [attachment] = await eventually(
        lambda: [a for a in store.attachments_of(message_sid) if a.data is not None]
    )
    assert attachment.data == photo
    assert attachment.sha256 == hashlib.sha256(photo).hexdigest()
    assert attachment.size == len(photo)
    assert attachment.content_type == "image/png"
    # The credentials went to the Twilio API only, not to the storage it redirected to.
    api_call, storage_call = [r for r in twilio_api.media_requests() if media_sid in r.path]
    assert api_call.headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in storage_call.headers

    [reply] = await eventually(lambda: replies_to(twilio_api, f"whatsapp:{number}"))
    assert reply["From"] == WHATSAPP_FROM
    assert case.ticket in reply["Body"]


async def test_status_by_sms_answers_the_reporter_and_nobody_else(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    reporter, stranger = phone_number(), phone_number()
    first = recorded("sms_text.form", From=reporter, Body="Lampu jalan mati di Jl. Dadali")
    assert (await post(gateway, twilio_stack, "/webhooks/twilio", first)).status == 200
    case = await eventually(lambda: store.case_of(first["MessageSid"]))
    await eventually(lambda: replies_to(twilio_api, reporter))

    ask = recorded("sms_status_command.form", From=reporter, Body=f"STATUS {case.ticket}")
    assert (await post(gateway, twilio_stack, "/webhooks/twilio", ask)).status == 200
    # Lower case, and without the dash before the check digit.
    plain = f"cek {case.ticket[:-2].lower()}{case.ticket[-1]}"
    nosy = recorded("sms_status_command.form", From=stranger, Body=plain)
    assert (await post(gateway, twilio_stack, "/webhooks/twilio", nosy)).status == 200

    answers = await eventually(lambda: len(replies_to(twilio_api, reporter)) == 2)
    del answers
    status_reply = replies_to(twilio_api, reporter)[1]["Body"]
    assert case.ticket in status_reply and "diterima" in status_reply
    [refusal] = await eventually(lambda: replies_to(twilio_api, stranger))
    assert "tidak ditemukan" in refusal["Body"]
    assert "diterima" not in refusal["Body"]


async def test_twilio_retrying_a_webhook_makes_one_case_and_one_reply(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    number = phone_number()
    fields = recorded("sms_text.form", From=number, Body="Sampah menumpuk di Jl. Sukasari")
    token = secrets.token_hex(16)
    answers = await asyncio.gather(
        *(
            post(
                gateway,
                twilio_stack,
                "/webhooks/twilio",
                fields,
                **{"I-Twilio-Idempotency-Token": token},
            )
            for _ in range(5)
        )
    )
    assert [a.status for a in answers] == [200] * 5
    assert {await a.text() for a in answers} == {EMPTY_TWIML}
    await eventually(lambda: store.case_of(fields["MessageSid"]))
    await eventually(lambda: replies_to(twilio_api, number))
    await asyncio.sleep(1.0)  # long enough for a second reply, had there been one
    assert len(replies_to(twilio_api, number)) == 1


async def test_a_retry_queues_the_message_when_its_first_copy_stalled_mid_claim(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    """A gateway that won a message's claim and died before queuing it leaves the claim
    "pending". Twilio's retry must not be acknowledged as a duplicate of nothing."""
    number = phone_number()
    fields = recorded("sms_text.form", From=number, Body="Got mampet di Jl. Merdeka")
    key = idempotency_key("sms", "twilio", fields["MessageSid"])
    connection = redis.Redis.from_url(twilio_stack.env["REDIS_URL"])
    try:
        connection.set(claim_key(key), "pending:0123456789abcdef", ex=CLAIM_PENDING_SECONDS)
        started = time.monotonic()
        answer = await post(gateway, twilio_stack, "/webhooks/twilio", fields)
        assert answer.status == 200
        assert time.monotonic() - started >= CLAIM_STALLED_SECONDS
        assert (connection.get(claim_key(key)) or b"").startswith(b"queued:")
    finally:
        connection.close()
    case = await eventually(lambda: store.case_of(fields["MessageSid"]))
    [reply] = await eventually(lambda: replies_to(twilio_api, number))
    assert case.ticket in reply["Body"]


async def test_a_confidential_sms_never_shows_the_number_in_a_log(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    number = phone_number()
    fields = recorded(
        "sms_text.form",
        From=number,
        Body="Petugas parkir minta pungli Rp50.000 di depan Pasar Bogor",
    )
    assert (await post(gateway, twilio_stack, "/webhooks/twilio", fields)).status == 200
    [reply] = await eventually(lambda: replies_to(twilio_api, number))
    assert "Kode tanda terima" in reply["Body"]
    logs = await asyncio.to_thread(Path(twilio_stack.worker_log).read_text) + caplog.text
    for form in (number, number.lstrip("+"), number[3:]):
        assert form not in logs


async def test_asking_the_status_of_a_confidential_case_keeps_the_number_sealed(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    """STATUS with a confidential ticket is about that case: the number that asks is
    stored as the confidential reporter (sealed), never in clear beside the case."""
    number = phone_number()
    report = recorded(
        "sms_text.form", From=number, Body="Oknum minta pungli Rp100.000 untuk izin usaha"
    )
    assert (await post(gateway, twilio_stack, "/webhooks/twilio", report)).status == 200
    [receipt_reply] = await eventually(lambda: replies_to(twilio_api, number))
    found = re.search(
        r"(BGR-\d{4}-R\d+-\d).*?([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})", receipt_reply["Body"]
    )
    assert found, receipt_reply["Body"]
    ticket, receipt = found.groups()
    ask = recorded(
        "sms_status_command.form",
        From=number,
        MessageSid="SM" + secrets.token_hex(16),
        Body=f"STATUS {ticket} {receipt}",
    )
    assert (await post(gateway, twilio_stack, "/webhooks/twilio", ask)).status == 200
    replies = await eventually(lambda: r if len(r := replies_to(twilio_api, number)) == 2 else None)
    assert ticket in replies[1]["Body"]  # the reporter is told the status of their case
    stored = await asyncio.to_thread(dump_database, store.engine)
    assert ticket in stored
    for form in (number, number.lstrip("+"), number[3:]):
        assert form not in stored


async def test_media_over_the_limit_or_not_what_it_claims_is_not_kept(
    gateway: Client, twilio_stack: Stack, twilio_api: FakeTwilio, store: Store
) -> None:
    number = phone_number()
    message_sid = "MM" + secrets.token_hex(16)
    good, huge, fake = ("ME" + secrets.token_hex(16) for _ in range(3))
    photo = png_bytes()
    twilio_api.media[good] = (photo, "image/png")
    twilio_api.media[huge] = (b"\xff\xd8\xff\xe0" + b"\0" * (17 * 1024 * 1024), "image/jpeg")
    twilio_api.media[fake] = (b"<html>not a photo</html>", "image/jpeg")
    fields = recorded(
        "mms_three_photos.form",
        From=number,
        MessageSid=message_sid,
        SmsMessageSid=message_sid,
        SmsSid=message_sid,
        MediaUrl0=twilio_api.media_url(message_sid, good),
        MediaContentType0="image/png",
        MediaUrl1=twilio_api.media_url(message_sid, huge),
        MediaContentType1="image/jpeg",
        MediaUrl2=twilio_api.media_url(message_sid, fake),
        MediaContentType2="image/jpeg",
    )
    assert (await post(gateway, twilio_stack, "/webhooks/twilio", fields)).status == 200

    def looked_at() -> list[models.Attachment]:
        found = store.attachments_of(message_sid)
        return found if len(found) == 3 and all(a.size is not None for a in found) else []

    kept, too_large, not_an_image = await eventually(looked_at)
    assert kept.data == photo
    assert too_large.data is None and too_large.size == 17 * 1024 * 1024 + 4
    assert not_an_image.data is None and not_an_image.sha256 is None
    # The links stay, so an operator can see what was sent.
    assert too_large.url == twilio_api.media_url(message_sid, huge)


def test_serve_says_loudly_when_signature_checks_are_off(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADUAN_")}
    env.update(
        settings_env(
            tmp_path,
            redis_url,
            f"sqlite:///{tmp_path / 'cases.sqlite3'}",
            ADUAN_HTTP_PORT=str(port),
            ADUAN_SMTP_PORT=str(free_port()),
            ADUAN_INSECURE_WEBHOOKS="true",
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--no-worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        seen = b""
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while b"Press Ctrl-C" not in seen or b"Never run a public gateway" not in seen:
            assert time.monotonic() < deadline and process.poll() is None, seen.decode()
            seen += process.stdout.read1(4096)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    text = seen.decode()
    assert "WARNING: ADUAN_INSECURE_WEBHOOKS is on" in text
    assert "NOT checked" in text
