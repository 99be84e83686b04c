"""One table-driven harness for every channel adapter (after courier's handlertest).

A case is a labelled request (a recorded payload from testdata/, edits to it, how it is
signed, the settings) and what must come of it: the HTTP status and body, and what was
queued — the normalised complaints (text, sender, channel, attachments, location, …) and
the delivery receipts. Each case runs the real app against the real Redis, on a queue of
its own with no worker, and reads back the jobs the gateway enqueued.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis
from aiohttp.test_utils import TestClient, TestServer
from rq import Queue
from rq.serializers import JSONSerializer

from config.settings import load_settings
from gateway.app import build_services, create_app
from gateway.intake import STORE_JOB, claim_key
from gateway.webhooks import RECEIPTS_JOB
from tests.conftest import settings_env
from workers.context import RESULTS_CHANNEL
from workers.crypto import Crypto

TESTDATA = Path(__file__).parent / "testdata"
SECRETS = {
    "ADUAN_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "ADUAN_TWILIO_AUTH_TOKEN": "twilio-auth-token-for-tests",
    "ADUAN_META_APP_SECRET": "meta-app-secret-for-tests",
    "ADUAN_META_VERIFY_TOKEN": "meta-verify-token-for-tests",
}
PUBLIC_URL = "http://testserver.local"
NOTHING: Sequence[Any] = ()


@dataclass(frozen=True)
class Case:
    label: str
    path: str
    payload: str | None = None  # a file under testdata/
    body: bytes | Callable[[], bytes] | None = None  # instead of a payload file
    fields: Mapping[str, str | None] = field(default_factory=dict)  # form edits; None drops
    method: str = "POST"
    query: str = ""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    sign: str = "valid"  # valid, wrong_secret, missing
    sign_url: str | None = None  # the URL the provider signed (Twilio); default: public URL
    tamper: Callable[[bytes], bytes] | None = None  # changes the body after signing
    settings: Mapping[str, str] = field(default_factory=dict)
    repeat: int = 1
    # What must come of it.
    status: int = 200
    body_contains: str | None = None
    content_type_is: str | None = None
    texts: Sequence[str] | None = None
    senders: Sequence[str] | None = None
    names: Sequence[str | None] | None = None
    channels: Sequence[str] | None = None
    attachments: Sequence[Sequence[str]] | None = None  # content types, per complaint
    locations: Sequence[Mapping[str, Any] | None] | None = None
    reply_to: Sequence[Sequence[str]] | None = None
    commands: Sequence[str | None] | None = None
    raw: Mapping[str, Any] | None = None  # entries the first complaint's raw payload has
    receipts: Sequence[tuple[str, str, str | None]] | None = None  # (id, status, error)
    check: Callable[[list[dict[str, Any]]], None] | None = None


Signer = Callable[[Case, bytes, str], dict[str, str]]


@dataclass(frozen=True)
class Outcome:
    status: int
    text: str
    content_type: str
    complaints: list[dict[str, Any]]
    receipts: list[dict[str, Any]]


def _listeners(connection: redis.Redis) -> int:
    return int(dict(connection.pubsub_numsub(RESULTS_CHANNEL))[RESULTS_CHANNEL.encode()])


async def _subscribed(connection: redis.Redis, before: int) -> None:
    """Wait for the app's result listener to have subscribed before the app stops.

    Stopping the app while its listener is still subscribing stalls for seconds (the
    Intake's close cancels a pub/sub connection mid-handshake); the cases are quicker
    than that handshake.
    """
    for _ in range(100):
        if _listeners(connection) > before:
            return
        await asyncio.sleep(0.01)


def form_body(case: Case) -> bytes:
    """A recorded Twilio form, with the case's edits applied."""
    assert case.payload is not None
    pairs = parse_qsl((TESTDATA / case.payload).read_text().strip(), keep_blank_values=True)
    values = dict(pairs)
    for key, value in case.fields.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return urlencode(values).encode()


def request_body(case: Case) -> bytes:
    if callable(case.body):
        return case.body()
    if case.body is not None:
        return case.body
    if case.payload is None:
        return b""
    if case.payload.endswith(".form"):
        return form_body(case)
    return (TESTDATA / case.payload).read_bytes()


async def run(case: Case, signer: Signer, redis_url: str, tmp: Path, content_type: str) -> Outcome:
    queue_name = f"harness-{secrets.token_hex(4)}"
    env = settings_env(
        tmp,
        redis_url,
        f"sqlite:///{tmp / 'unused.sqlite3'}",
        ADUAN_QUEUE=queue_name,
        ADUAN_PUBLIC_URL=PUBLIC_URL,
        # Cases send the same recorded senders many times a second; limits have tests of their own.
        ADUAN_RATE_LIMITS="ip=0/60,sms=0/60,whatsapp=0/60",
        **SECRETS,
    )
    env.update(case.settings)
    settings = load_settings(env)
    body = request_body(case)
    target = case.path + case.query
    sign_url = case.sign_url or f"{settings.public_url}{target}"
    headers = dict(signer(case, body, sign_url)) if case.sign != "missing" else {}
    headers["Content-Type"] = case.content_type or content_type
    headers.update(case.headers)
    if case.tamper is not None:
        body = case.tamper(body)
    app = create_app(build_services(settings, redis_url))
    connection = redis.Redis.from_url(redis_url)
    listening = _listeners(connection)
    statuses: list[int] = []
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for _ in range(case.repeat):
            response = await client.request(
                case.method,
                target,
                data=io.BytesIO(body) if case.method == "POST" else None,
                headers=headers,
            )
            text = await response.text()
            statuses.append(response.status)
            content_type = response.headers.get("Content-Type", "")
        await _subscribed(connection, listening)
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    complaints: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    crypto = Crypto(settings.encryption_keys, settings.secret_key)
    for job in queue.get_jobs():
        if job.func_name == STORE_JOB:
            # What may be confidential travels sealed; the store job opens it just so.
            complaints.extend(
                crypto.open(item["sealed"]) if "sealed" in item else item for item in job.args[0]
            )
        elif job.func_name == RECEIPTS_JOB:
            receipts.extend(job.args[0])
    # Leave nothing behind: the next case may send the same recorded message.
    for complaint in complaints:
        connection.delete(claim_key(complaint["idempotency_key"]))
    queue.empty()
    connection.close()
    # Messages of one request are queued concurrently; compare them in the order sent.
    complaints.sort(key=lambda c: (c["received_at"], c["provider_message_id"]))
    assert len(set(statuses)) == 1, f"retries were answered differently: {statuses}"
    return Outcome(statuses[0], text, content_type, complaints, receipts)


def check(case: Case, outcome: Outcome) -> None:
    assert outcome.status == case.status, (outcome.status, outcome.text)
    if case.body_contains is not None:
        assert case.body_contains in outcome.text, outcome.text
    if case.content_type_is is not None:
        assert outcome.content_type.startswith(case.content_type_is), outcome.content_type
    complaints = outcome.complaints
    if case.status >= 400:
        assert complaints == [] and outcome.receipts == [], "a refused request queued something"
        return

    def each(key: Callable[[dict[str, Any]], Any]) -> list[Any]:
        return [key(c) for c in complaints]

    if case.texts is not None:
        assert each(lambda c: c["text"]) == list(case.texts)
    if case.senders is not None:
        assert each(lambda c: c["reporter"]["address"]) == list(case.senders)
    if case.names is not None:
        assert each(lambda c: c["reporter"]["name"]) == list(case.names)
    if case.channels is not None:
        assert each(lambda c: c["channel"]) == list(case.channels)
    if case.attachments is not None:
        got = each(lambda c: [a["content_type"] for a in c["attachments"]])
        assert got == [list(a) for a in case.attachments]
    if case.locations is not None:
        got = each(lambda c: c["location"])
        for location, expected in zip(got, case.locations, strict=True):
            if expected is None:
                assert location is None
            else:
                assert location is not None
                assert {k: location[k] for k in expected} == dict(expected)
    if case.reply_to is not None:
        assert each(lambda c: c["reply_to"]) == [list(r) for r in case.reply_to]
    if case.commands is not None:
        assert each(lambda c: c["command"]) == list(case.commands)
    if case.raw is not None:
        assert complaints, "no complaint to look into"
        for key, value in case.raw.items():
            assert complaints[0]["raw"].get(key) == value, key
    if case.receipts is not None:
        got = [(r["provider_id"], r["status"], r["error"]) for r in outcome.receipts]
        assert got == list(case.receipts)
    if case.check is not None:
        case.check(complaints)
