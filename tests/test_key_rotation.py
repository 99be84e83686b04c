"""Rotating ADUAN_ENCRYPTION_KEY: confidential cases made under key A stay usable under
key B alone once `aduan keys rotate` has re-sealed the store, and nothing opens with A.

Everything a reporter and an operator rely on is checked after the rotation: the reply
and the status notification reach the confidential reporter, an integrity officer's
reveal works, the receipt code opens the tracking page, and a reporter who writes again
is recognised as the same person.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, inspect, select
from twilio.request_validator import RequestValidator

from config.data import load_replies
from gateway.app import create_app
from normalizer import idempotency_key
from tests.conftest import ROOT, Stack, eventually, pg_schema, settings_env, stop_process
from tests.fakes.stack import phone_number, provider_stack
from tests.fakes.twilio_api import FakeTwilio
from workers import cases, models
from workers.context import Context
from workers.crypto import Crypto, generate_key
from workers.db import make_engine, session_factory
from workers.keys import SEALED_COLUMNS, Counts, rotate_store
from workers.replies import enqueue_deliveries

KEY_A, KEY_B = generate_key(), generate_key()
SMS_FROM = "+14155550100"
INTEGRITY = cases.Actor("inspektorat", "integrity")
SUPERVISOR = cases.Actor("supervisor", "supervisor")


@pytest.fixture
def own_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A case store of this test's own, of the kind `database_url` names: rotation
    rewrites every sealed value in the store, and must not meet other tests' keys."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'rotation.sqlite3'}"
        return
    with pg_schema("aduan_keys") as url:
        yield url


def twilio_env(api: FakeTwilio, keys: str) -> dict[str, str]:
    return {
        "ADUAN_ENCRYPTION_KEY": keys,
        "ADUAN_TWILIO_ACCOUNT_SID": api.account_sid,
        "ADUAN_TWILIO_AUTH_TOKEN": api.auth_token,
        "ADUAN_TWILIO_SMS_FROM": SMS_FROM,
        "ADUAN_TWILIO_API_URL": api.url,
    }


@asynccontextmanager
async def gateway(stack: Stack) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(stack.services()), host="127.0.0.1")) as client:
        yield client


async def sms(client: TestClient[Any, Any], stack: Stack, number: str, text: str) -> str:
    """A signed Twilio SMS webhook; the message sid."""
    sid = "SM" + secrets.token_hex(16)
    fields = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": stack.settings.twilio_account_sid or "",
        "From": number,
        "To": SMS_FROM,
        "Body": text,
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCountry": "ID",
        "ApiVersion": "2010-04-01",
    }
    url = f"{stack.settings.public_url}/webhooks/twilio"
    signature = RequestValidator(stack.settings.twilio_auth_token or "").compute_signature(
        url, fields
    )
    response = await client.post(
        "/webhooks/twilio",
        data=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert response.status == 200, await response.text()
    return sid


def texts_to(api: FakeTwilio, number: str) -> list[str]:
    return [m["Body"] for m in api.sent() if m.get("To") == number]


def aduan(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def sealed_values(engine: Engine) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with session_factory(engine)() as session:
        for target in SEALED_COLUMNS:
            query = select(target.column).where(target.column.is_not(None), target.only())
            found[target.label] = [str(v) for v in session.scalars(query)]
    return found


def counts_line(output: str, label: str) -> tuple[int, int]:
    match = re.search(rf"{re.escape(label)}\s+(\d+) re-sealed\s+(\d+) already current", output)
    assert match, output
    return int(match.group(1)), int(match.group(2))


def test_every_sealed_column_of_the_models_is_rotated() -> None:
    """A sealed column added later but forgotten here would become unreadable once the
    old key is removed; this names it instead."""
    listed = {target.label for target in SEALED_COLUMNS}
    for mapper in models.Base.registry.mappers:
        table = mapper.class_.__tablename__
        for column in inspect(mapper.class_).columns:
            if column.key.startswith("sealed_"):
                assert f"{table}.{column.key}" in listed


async def test_after_rotation_the_new_key_alone_serves_confidential_reporters(
    redis_url: str, own_database: str, tmp_path: Path, twilio_api: FakeTwilio
) -> None:
    for part in ("a", "b", "cli"):
        (tmp_path / part).mkdir()
    sms_number, app_number = phone_number(), phone_number()
    name, email = "Sri Rahayu Rahasia", f"sri.{secrets.token_hex(3)}@example.org"

    # Under key A: a confidential SMS and a confidential report through the app API.
    with provider_stack(
        redis_url,
        own_database,
        tmp_path / "a",
        **twilio_env(twilio_api, KEY_A),
    ) as stack_a:
        async with gateway(stack_a) as client:
            await sms(client, stack_a, sms_number, "Petugas parkir minta pungli Rp50.000 di pasar")
            response = await client.post(
                "/api/v1/complaints",
                json={
                    "text": "Petugas kelurahan minta uang pelicin Rp200.000 untuk KTP saya.",
                    "name": name,
                    "phone": app_number,
                    "email": email,
                },
            )
            assert response.status == 201, await response.text()
            app_case = await response.json()
            assert app_case["receipt"]
            [first_reply] = await eventually(lambda: texts_to(twilio_api, sms_number), 20)
            await eventually(lambda: texts_to(twilio_api, app_number), 20)
        queue = stack_a.env["ADUAN_QUEUE"]  # where anything sealed with A could still wait
        receipt = re.search(r"Kode tanda terima: ([A-Z0-9-]+)", first_reply)
        assert receipt, first_reply
        sms_ticket = re.search(r"Nomor: (\S+)\.", first_reply)
        assert sms_ticket, first_reply

    engine = make_engine(own_database)
    try:
        before = sealed_values(engine)
        assert all(before.values()), before  # every kind of sealed value is there to rotate
        crypto_a = Crypto((KEY_A,), "unused-secret-key-0123")
        assert all(crypto_a.is_current(t) for tokens in before.values() for t in tokens)

        # An interrupted rotation: the first batch is committed, then the process dies.
        class Interrupted(Exception):
            pass

        def die(_label: str, _counts: Counts) -> None:
            raise Interrupted

        with pytest.raises(Interrupted):
            rotate_store(engine, Crypto((KEY_B, KEY_A), "s" * 16), batch_size=1, progress=die)

        env_ba = settings_env(
            tmp_path / "cli",
            redis_url,
            own_database,
            ADUAN_QUEUE=queue,
            ADUAN_ENCRYPTION_KEY=f"{KEY_B},{KEY_A}",
        )
        rotated = aduan(env_ba, "keys", "rotate", "--batch-size", "2")
        assert rotated.returncode == 0, rotated.stderr
        contacts = len(before["reporters.sealed_contact"])
        assert counts_line(rotated.stdout, "reporters.sealed_contact") == (contacts - 1, 1)
        assert "the older key(s) can now be removed" in rotated.stdout
        # Run again: there is nothing left to do, and it says so.
        again = aduan(env_ba, "keys", "rotate")
        assert again.returncode == 0, again.stderr
        for target in SEALED_COLUMNS:
            assert counts_line(again.stdout, target.label) == (0, len(before[target.label]))

        after = sealed_values(engine)
        crypto_b = Crypto((KEY_B,), "unused-secret-key-0123")
        for label, tokens in after.items():
            assert len(tokens) == len(before[label])
            for token in tokens:
                assert crypto_b.is_current(token), label
                with pytest.raises(ValueError, match="cannot be opened with any configured key"):
                    crypto_a.open(token)

        # Key A alone opens nothing, and says so rather than producing garbage.
        env_a_only = {**env_ba, "ADUAN_ENCRYPTION_KEY": KEY_A}
        refused = aduan(env_a_only, "keys", "rotate")
        assert refused.returncode == 1
        assert "open with none of the configured keys" in refused.stderr
        with session_factory(engine)() as session, session.begin():
            case_id = session.scalar(
                select(models.Case.id).where(models.Case.ticket == app_case["ticket"])
            )
            assert case_id is not None
            with pytest.raises(ValueError, match="cannot be opened with any configured key"):
                cases.reveal(session, crypto_a, case_id, INTEGRITY, "checking the old key")
    finally:
        engine.dispose()

    # Key B alone, from here on.
    with provider_stack(
        redis_url,
        own_database,
        tmp_path / "b",
        **twilio_env(twilio_api, KEY_B),
    ) as stack_b:
        settings_b = stack_b.settings
        context = Context(settings_b, redis_url)
        sessions = context.sessions
        try:
            # An integrity officer can still reveal the reporter.
            with sessions() as session, session.begin():
                app_case_id = session.scalar(
                    select(models.Case.id).where(models.Case.ticket == app_case["ticket"])
                )
                assert app_case_id is not None
                revealed = cases.reveal(
                    session, context.crypto, app_case_id, INTEGRITY, "investigating the report"
                )
            assert revealed["name"] == name
            assert revealed["email"] == email
            assert revealed["address"] == app_number

            # A status change is told to the confidential SMS reporter, by SMS.
            replies = load_replies(None)
            with sessions() as session, session.begin():
                sms_case = session.scalar(
                    select(models.Case).where(models.Case.ticket == sms_ticket.group(1))
                )
                assert sms_case is not None
                reporter_id = sms_case.reporter_id
                _event, ids = cases.change_status(
                    session, replies, sms_case.id, SUPERVISOR, "verified", "checked"
                )
                _audit, reply_id = cases.reply(
                    session, replies, app_case_id, SUPERVISOR, "Terima kasih, sedang kami periksa."
                )
            await asyncio.to_thread(enqueue_deliveries, context, [*ids, reply_id])
            await eventually(lambda: len(texts_to(twilio_api, sms_number)) >= 2, 20)
            assert sms_ticket.group(1) in texts_to(twilio_api, sms_number)[-1]
            await eventually(
                lambda: "sedang kami periksa" in " ".join(texts_to(twilio_api, app_number)), 20
            )

            async with gateway(stack_b) as client:
                # The receipt code still opens the tracking page; a wrong one does not.
                track = f"/track/{sms_ticket.group(1)}"
                wrong = await client.post(track, data={"receipt": "AAAA-BBBB-CCCC"})
                assert wrong.status == 404
                opened = await client.post(track, data={"receipt": receipt.group(1)})
                assert opened.status == 200
                assert "Pungutan liar" in await opened.text()

                # The same reporter writes again and is recognised as the same person:
                # the lookup hash is keyed with ADUAN_SECRET_KEY, untouched by rotation.
                sid = await sms(
                    client, stack_b, sms_number, "Pungli lagi di pasar, diminta uang keamanan"
                )

                key = idempotency_key("sms", "twilio", sid)

                def stored_reporter() -> int | None:
                    with sessions() as session:
                        return session.scalar(
                            select(models.Message.reporter_id).where(
                                models.Message.idempotency_key == key
                            )
                        )

                latest = await eventually(stored_reporter, 20)
            with sessions() as session:
                reporters = session.scalars(
                    select(models.Reporter.id).where(models.Reporter.confidential.is_(True))
                ).all()
            assert latest == reporter_id
            assert len(reporters) == 2  # the SMS reporter and the app reporter, no third
        finally:
            context.engine.dispose()
            stop_process(stack_b.worker)
