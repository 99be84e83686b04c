"""No confidential reporter's identity in any log line or metric, even at DEBUG.

A whole `aduan serve` (gateway, SMTP intake, embedded Redis, worker) runs with
ADUAN_LOG_LEVEL=DEBUG and real providers' stand-ins on loopback: the fake Twilio and
Graph APIs and an SMTP relay. Confidential complaints with distinctive phone numbers,
email addresses and a distinctive name come in through every channel, the replies go out
to those very addresses (which proves the identities were used, so the test cannot pass
by sending nothing), and then every byte the process tree wrote, the /metrics page and
everything left in Redis are searched for every written form of each identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import smtplib
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import redis
from twilio.request_validator import RequestValidator

from tests.conftest import ROOT, eventually, free_port, stop_process
from tests.email_fixtures import Sink, sink
from tests.fakes.graph_api import FakeGraph
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import png_bytes

__all__ = ["sink"]  # fixture

SMS_FROM = "+14155550100"
WHATSAPP_FROM = "whatsapp:+14155238886"
APP_SECRET = "meta-app-secret-logs"
OURS = "aduan@localhost"
NAME = "Wiryawan Sasmitapura"
PUNGLI = "Petugas kelurahan minta uang pelicin Rp{n}.000 untuk mengurus KTP, pungli."


def _number() -> str:
    return "+62813" + "".join(secrets.choice("0123456789") for _ in range(8))


@dataclass(frozen=True)
class Identity:
    """One reporter's details, and every form they could take in a log line."""

    phone: str = ""
    email: str = ""

    def forms(self) -> list[str]:
        found = [NAME.lower(), NAME.split()[-1].lower()]
        if self.phone:
            national = self.phone.removeprefix("+62")
            found += [
                self.phone,  # E.164
                self.phone.lstrip("+"),  # digits only, as Meta's wa_id
                "0" + national,  # local 0813…
                national,  # without any prefix
                f"whatsapp:{self.phone}",
                f"0{national[:3]}-{national[3:7]}-{national[7:]}",  # as people write it
                self.phone.replace("+", "%2B"),  # URL-encoded
            ]
        if self.email:
            found += [self.email.lower(), self.email.split("@")[0].lower()]
        return found




@dataclass
class Serve:
    base: str
    smtp_port: int
    data_dir: Path
    output: Path
    process: subprocess.Popen[bytes]

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture
def serve(
    tmp_path: Path, twilio_api: FakeTwilio, graph_api: FakeGraph, sink: Sink
) -> Iterator[Serve]:
    http_port, smtp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADUAN_")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(
        ADUAN_DATA_DIR=str(tmp_path / "var"),
        ADUAN_HTTP_PORT=str(http_port),
        ADUAN_SMTP_PORT=str(smtp_port),
        ADUAN_PUBLIC_URL=base,
        ADUAN_LOG_LEVEL="DEBUG",
        ADUAN_RATE_LIMITS="ip=0/60,web=0/60,api=0/60,sms=0/60,whatsapp=0/60,email=0/60",
        **twilio_api.settings(SMS_FROM, WHATSAPP_FROM),
        ADUAN_META_APP_SECRET=APP_SECRET,
        ADUAN_META_VERIFY_TOKEN="verify-logs",
        ADUAN_META_ACCESS_TOKEN=graph_api.access_token,
        ADUAN_META_PHONE_NUMBER_ID=graph_api.phone_number_id,
        ADUAN_META_GRAPH_URL=graph_api.url,
        ADUAN_SMTP_RELAY=sink.address,
        ADUAN_EMAIL_DOMAINS="localhost",
    )
    output = tmp_path / "serve.out"
    with output.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=handle,
            stderr=handle,
        )
    running = Serve(base, smtp_port, tmp_path / "var", output, process)
    try:
        _wait_until_up(running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                stop_process(process)


def _wait_until_up(serve: Serve) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if serve.process.poll() is not None:
            raise AssertionError(f"aduan serve exited:\n{serve.text()}")
        try:
            with urllib.request.urlopen(f"{serve.base}/healthz", timeout=2):  # noqa: S310
                with smtplib.SMTP("127.0.0.1", serve.smtp_port, timeout=2) as client:
                    client.noop()
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"aduan serve did not come up:\n{serve.text()}")


def _twilio_fields(number: str, text: str, *, whatsapp: bool = False) -> dict[str, str]:
    sid = "SM" + secrets.token_hex(16)
    fields = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": f"whatsapp:{number}" if whatsapp else number,
        "To": WHATSAPP_FROM if whatsapp else SMS_FROM,
        "Body": text,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    if whatsapp:
        fields.update(ProfileName=NAME, WaId=number.lstrip("+"), MessageType="text")
    else:
        fields.update(FromCountry="ID")
    return fields


async def _twilio(
    http: aiohttp.ClientSession, serve: Serve, token: str, fields: dict[str, str]
) -> None:
    url = f"{serve.base}/webhooks/twilio"
    signature = RequestValidator(token).compute_signature(url, fields)
    async with http.post(
        url,
        data=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    ) as response:
        assert response.status == 200, await response.text()


async def _meta(http: aiohttp.ClientSession, serve: Serve, number: str, text: str) -> None:
    digits = number.lstrip("+")
    payload: dict[str, Any] = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [{"profile": {"name": NAME}, "wa_id": digits}],
                            "messages": [
                                {
                                    "from": digits,
                                    "id": f"wamid.LOGS{secrets.token_hex(12)}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    body = json.dumps(payload).encode()
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with http.post(
        f"{serve.base}/webhooks/whatsapp",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"},
    ) as response:
        assert response.status == 200, await response.text()


def _mail(sender: str, body: str, subject: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{NAME} <{sender}>"
    message["To"] = OURS
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    for key, value in headers.items():
        message[key] = value
    message.set_content(f"{body}\n\nHormat saya,\n{NAME}\n")
    return message


def _send_mail(serve: Serve, message: EmailMessage) -> None:
    sender = str(message["From"].addresses[0].addr_spec)
    with smtplib.SMTP("127.0.0.1", serve.smtp_port, timeout=15) as client:
        client.sendmail(sender, [OURS], message.as_bytes(policy=policy.SMTP))


def _redis_text(serve: Serve) -> str:
    """Every key and value in the embedded Redis, RQ's compressed job data unpacked."""
    client: Any = redis.Redis(unix_socket_path=str(serve.data_dir / "redis.sock"))
    parts: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, bytes):
            with contextlib.suppress(zlib.error):
                value = zlib.decompress(value)
            parts.append(value.decode("latin-1"))
        else:
            parts.append(str(value))

    try:
        for key in client.scan_iter(count=1000):
            add(key)
            kind = client.type(key)
            if kind == b"string":
                add(client.get(key))
            elif kind == b"hash":
                for field, value in client.hgetall(key).items():
                    add(field)
                    add(value)
            elif kind == b"list":
                for value in client.lrange(key, 0, -1):
                    add(value)
            elif kind in (b"set",):
                for value in client.smembers(key):
                    add(value)
            elif kind == b"zset":
                for value, _score in client.zrange(key, 0, -1, withscores=True):
                    add(value)
            elif kind == b"stream":
                for _id, entry in client.xrange(key):
                    for field, value in entry.items():
                        add(field)
                        add(value)
    finally:
        client.close()
    return "\n".join(parts)


def _hits(text: str, identities: list[Identity]) -> list[str]:
    lowered = text.lower()
    found = []
    for identity in identities:
        for form in identity.forms():
            if form.lower() in lowered:
                index = lowered.index(form.lower())
                found.append(f"{form!r}: …{text[max(0, index - 120) : index + 80]!r}…")
    return found


async def test_confidential_reporters_never_reach_a_log_a_metric_or_redis(
    serve: Serve, twilio_api: FakeTwilio, graph_api: FakeGraph, sink: Sink
) -> None:
    form_id = Identity(_number(), f"wiryawan.form.{secrets.token_hex(3)}@example.org")
    json_id = Identity(_number(), f"wiryawan.json.{secrets.token_hex(3)}@example.org")
    multipart_id = Identity("", f"Wiryawan.Multipart.{secrets.token_hex(3)}@Example.org")
    sms_id = Identity(_number())
    whatsapp_id = Identity(_number())
    meta_id = Identity(_number())
    mail_id = Identity("", f"wiryawan.mail.{secrets.token_hex(3)}@example.org")
    everyone = [form_id, json_id, multipart_id, sms_id, whatsapp_id, meta_id, mail_id]
    token = twilio_api.auth_token

    async with aiohttp.ClientSession() as http:
        # The web form, with its one-time token; the phone as people type it.
        async with http.get(f"{serve.base}/") as page:
            found = re.search(r'name="form_token" value="([^"]+)"', await page.text())
            assert found, "the form carries its token"
        local = "0" + form_id.phone.removeprefix("+62")
        async with http.post(
            f"{serve.base}/",
            data={
                "form_token": found.group(1),
                "text": PUNGLI.format(n=100),
                "name": NAME,
                "phone": f"{local[:4]}-{local[4:8]}-{local[8:]}",
                "email": form_id.email,
            },
        ) as response:
            html = await response.text()
            assert response.status == 200, html
            assert 'id="receipt"' in html

        # The app API, as JSON and as multipart with a photo.
        async with http.post(
            f"{serve.base}/api/v1/complaints",
            json={
                "text": PUNGLI.format(n=200),
                "name": NAME,
                "phone": json_id.phone,
                "email": json_id.email,
            },
        ) as response:
            body = await response.json()
            assert response.status == 201 and body.get("receipt"), body
        form = aiohttp.FormData()
        form.add_field("text", PUNGLI.format(n=300))
        form.add_field("name", NAME)
        form.add_field("email", multipart_id.email)
        form.add_field("photo", png_bytes(), filename="kuitansi.png", content_type="image/png")
        async with http.post(f"{serve.base}/api/v1/complaints", data=form) as response:
            body = await response.json()
            assert response.status == 201 and body.get("receipt"), body

        # Twilio SMS and WhatsApp, and the WhatsApp Cloud API.
        await _twilio(http, serve, token, _twilio_fields(sms_id.phone, PUNGLI.format(n=400)))
        await _twilio(
            http,
            serve,
            token,
            _twilio_fields(whatsapp_id.phone, PUNGLI.format(n=500), whatsapp=True),
        )
        await _meta(http, serve, meta_id.phone, PUNGLI.format(n=600))

        # Email over SMTP.
        first = _mail(mail_id.email, PUNGLI.format(n=700), "Pungli di kelurahan")
        await asyncio.to_thread(_send_mail, serve, first)

        # Every reporter gets an answer at their own address: the identities were used.
        def texts(number: str) -> list[str]:
            return [m["Body"] for m in twilio_api.sent() if m.get("To") == number]

        for number in (form_id.phone, json_id.phone, sms_id.phone):
            [reply] = await eventually(lambda: texts(number), 30)  # noqa: B023 - awaited here
            assert "Kode tanda terima" in reply
        [whatsapp_reply] = await eventually(lambda: texts(f"whatsapp:{whatsapp_id.phone}"), 30)
        assert "Kode tanda terima" in whatsapp_reply
        [meta_reply] = await eventually(
            lambda: [m for m in graph_api.sent() if m.get("to") == meta_id.phone.lstrip("+")], 30
        )
        assert "Kode tanda terima" in json.dumps(meta_reply)
        for address in (multipart_id.email.lower(), mail_id.email):
            await eventually(lambda: sink.to(address), 30)  # noqa: B023 - awaited here
        [mail_reply] = sink.to(mail_id.email)

        # STATUS by SMS for the confidential ticket, and an email reply in the thread.
        [sms_reply] = texts(sms_id.phone)
        ticket = re.search(r"Nomor: (\S+)\.", sms_reply)
        assert ticket, sms_reply
        await _twilio(http, serve, token, _twilio_fields(sms_id.phone, f"STATUS {ticket.group(1)}"))
        await eventually(lambda: len(texts(sms_id.phone)) >= 2, 30)
        assert ticket.group(1) in texts(sms_id.phone)[-1]
        ours = str(mail_reply.message["Message-ID"])
        follow = _mail(
            mail_id.email,
            "Tambahan: pungli terjadi lagi hari ini di loket yang sama.",
            f"Re: {mail_reply.message['Subject']}",
            **{"In-Reply-To": ours, "References": f"{first['Message-ID']} {ours}"},
        )
        await asyncio.to_thread(_send_mail, serve, follow)
        await eventually(lambda: len(sink.to(mail_id.email)) >= 2, 30)

        async with http.get(f"{serve.base}/metrics") as response:
            metrics = await response.text()
            assert response.status == 200
    assert 'channel="sms"' in metrics  # the metrics did count these complaints

    redis_dump = await asyncio.to_thread(_redis_text, serve)
    serve.process.send_signal(signal.SIGINT)  # flush and close everything it writes
    assert await asyncio.to_thread(serve.process.wait, 60) == 0, "aduan serve stops on Ctrl-C"
    output = serve.text()
    # DEBUG really was on, for aduan's own loggers in both the gateway and the worker.
    assert " DEBUG aduan: aduan serve: logging at DEBUG" in output
    assert " DEBUG aduan: aduan worker: logging at DEBUG" in output
    assert " DEBUG rq.queue: " in output  # and for the libraries'
    assert " INFO aduan.replies: delivery " in output

    # The search itself finds these identities where they belong: in what the providers
    # were asked to send, and in the relayed mail.
    sent = json.dumps(twilio_api.sent()) + json.dumps(graph_api.sent())
    assert len(_hits(sent, [sms_id, whatsapp_id, meta_id, form_id, json_id])) >= 5
    assert _hits(" ".join(r.rcpt_tos[0] for r in sink.to(mail_id.email)), [mail_id])

    for where, text in (("the logs", output), ("/metrics", metrics), ("Redis", redis_dump)):
        hits = _hits(text, everyone)
        assert not hits, f"a confidential reporter in {where}:\n" + "\n".join(hits)
