"""Twilio SMS and WhatsApp webhooks and status callbacks, case by case."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from tests.channels.harness import SECRETS, Case, check, run

INCOMING = "/webhooks/twilio"
STATUS = "/webhooks/twilio/status"
FORM = "application/x-www-form-urlencoded"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
TOKEN = SECRETS["ADUAN_TWILIO_AUTH_TOKEN"]
AC = "AC" + "0" * 32
MEDIA = f"https://api.twilio.com/2010-04-01/Accounts/{AC}/Messages"


def sign(case: Case, body: bytes, url: str) -> dict[str, str]:
    """Signed by the twilio package's own validator, as Twilio signs its requests."""
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    token = TOKEN if case.sign == "valid" else "some-other-accounts-token"
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


def _swap_body(body: bytes) -> bytes:
    return body.replace(b"Jalan+berlubang", b"Jalan+mulus")


CASES = [
    # Incoming messages.
    Case(
        "sms text",
        INCOMING,
        "twilio/sms_text.form",
        body_contains=EMPTY_TWIML,
        content_type_is="text/xml",
        texts=[
            "Jalan berlubang besar di Jl. Pajajaran depan Tugu Kujang, "
            "sudah 2 minggu belum diperbaiki."
        ],
        senders=["+6281234567890"],
        channels=["sms"],
        attachments=[[]],
        locations=[None],
        commands=[None],
    ),
    Case(
        "sms with emoji and curly quotes (two UCS-2 segments)",
        INCOMING,
        "twilio/sms_unicode.form",
        texts=[
            "Lampu PJU mati total di gang Mawar 🙏 mohon segera diperbaiki, gelap sekali kalau "
            "malam “bahaya”"
        ],
        senders=["+6285711223344"],
        raw={"NumSegments": "2"},
    ),
    Case(
        "sms CEK command in lower case without dashes",
        INCOMING,
        "twilio/sms_status_command.form",
        commands=["status"],
        channels=["sms"],
    ),
    Case(
        "sms STATUS command with the ticket's dashes",
        INCOMING,
        "twilio/sms_status_command.form",
        fields={"Body": "STATUS BGR-2026-000123-4"},
        commands=["status"],
    ),
    Case(
        "sms Body of 1,600 characters (ten segments) is kept whole",
        INCOMING,
        "twilio/sms_text.form",
        fields={"Body": "Sampah " * 228 + "ujung", "NumSegments": "11"},
        check=lambda complaints: (
            None if complaints[0]["text"].endswith("Sampah ujung") else pytest.fail("cut")
        ),
    ),
    Case(
        "whatsapp text keeps the profile name",
        INCOMING,
        "twilio/whatsapp_text.form",
        texts=["Sampah menumpuk di TPS Jl. Merdeka, bau busuk sampai ke rumah warga."],
        senders=["+6281398765432"],
        names=["Dewi Lestari"],
        channels=["whatsapp"],
    ),
    Case(
        "whatsapp photo with caption: the media link is queued for the worker",
        INCOMING,
        "twilio/whatsapp_image.form",
        texts=["Ini fotonya, got mampet depan SD"],
        attachments=[["image/jpeg"]],
        check=lambda complaints: (
            None
            if complaints[0]["attachments"][0]["url"].startswith(MEDIA)
            and complaints[0]["attachments"][0]["data_b64"] is None
            else pytest.fail("media link")
        ),
    ),
    Case(
        "whatsapp location",
        INCOMING,
        "twilio/whatsapp_location.form",
        texts=[""],
        channels=["whatsapp"],
        locations=[
            {
                "lat": -6.5971469,
                "lon": 106.8060388,
                "address": "Jl. Ir. H. Juanda No.10, Paledang, Bogor Tengah",
                "label": "Balai Kota Bogor",
            }
        ],
    ),
    Case(
        "whatsapp photo with a location",
        INCOMING,
        "twilio/whatsapp_photo_location.form",
        attachments=[["image/jpeg"]],
        locations=[{"lat": -6.6010583, "lon": 106.8061736, "label": "Depan Tugu Kujang"}],
    ),
    Case(
        "whatsapp reply names the message it answers",
        INCOMING,
        "twilio/whatsapp_reply.form",
        reply_to=[["SMaa11bb22cc33dd44ee55ff6677889900"]],
    ),
    Case(
        "mms with three photos",
        INCOMING,
        "twilio/mms_three_photos.form",
        channels=["sms"],
        attachments=[["image/jpeg", "image/png", "image/gif"]],
    ),
    Case(
        "unknown extra fields are kept in the raw payload",
        INCOMING,
        "twilio/whatsapp_text.form",
        fields={"Forwarded": "true", "ReferralCtwaClid": "ARAkLkA8rmlFeiCktEJQ"},
        raw={
            "Forwarded": "true",
            "ReferralCtwaClid": "ARAkLkA8rmlFeiCktEJQ",
            "WaId": "6281398765432",
        },
    ),
    Case(
        "a retried webhook (same MessageSid and idempotency token) makes one complaint",
        INCOMING,
        "twilio/sms_text.form",
        headers={"I-Twilio-Idempotency-Token": "5c2d9a0e-8f1b-4c3d-9e7f-6a5b4c3d2e1f"},
        repeat=3,
        body_contains=EMPTY_TWIML,
        senders=["+6281234567890"],
        raw={"_idempotency_token": "5c2d9a0e-8f1b-4c3d-9e7f-6a5b4c3d2e1f"},
    ),
    Case(
        "a query string in the webhook URL is part of what Twilio signs",
        INCOMING,
        "twilio/sms_text.form",
        query="?kota=bogor&v=2",
        senders=["+6281234567890"],
    ),
    # Where the signature was computed: behind proxies, ports, prefixes.
    Case(
        "behind a TLS proxy that sets X-Forwarded-Proto and X-Forwarded-Host",
        INCOMING,
        "twilio/sms_text.form",
        sign_url="https://aduan.kotabogor.go.id/webhooks/twilio",
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "aduan.kotabogor.go.id, internal-lb:8080",
        },
        senders=["+6281234567890"],
    ),
    Case(
        "public URL with https, signed with the explicit default port",
        INCOMING,
        "twilio/sms_text.form",
        settings={"ADUAN_PUBLIC_URL": "https://aduan.kotabogor.go.id"},
        sign_url="https://aduan.kotabogor.go.id:443/webhooks/twilio",
        senders=["+6281234567890"],
    ),
    Case(
        "public URL with a path prefix the proxy strips",
        INCOMING,
        "twilio/sms_text.form",
        settings={"ADUAN_PUBLIC_URL": "https://kotabogor.go.id/aduan/"},
        sign_url="https://kotabogor.go.id/aduan/webhooks/twilio",
        senders=["+6281234567890"],
    ),
    Case(
        "insecure development mode accepts an unsigned request",
        INCOMING,
        "twilio/sms_text.form",
        sign="missing",
        settings={"ADUAN_INSECURE_WEBHOOKS": "true", "ADUAN_TWILIO_AUTH_TOKEN": ""},
        senders=["+6281234567890"],
    ),
    # Refused: nothing is queued.
    Case(
        "missing signature",
        INCOMING,
        "twilio/sms_text.form",
        sign="missing",
        status=403,
        body_contains="missing_signature",
    ),
    Case(
        "signed with another account's token",
        INCOMING,
        "twilio/sms_text.form",
        sign="wrong_secret",
        status=403,
        body_contains="bad_signature",
    ),
    Case(
        "body changed after signing",
        INCOMING,
        "twilio/sms_text.form",
        tamper=_swap_body,
        status=403,
        body_contains="bad_signature",
    ),
    Case(
        "signed for another URL",
        INCOMING,
        "twilio/sms_text.form",
        sign_url="https://elsewhere.example.org/webhooks/twilio",
        status=403,
    ),
    Case(
        "a forwarded host does not help a signature made for another host",
        INCOMING,
        "twilio/sms_text.form",
        sign_url="https://aduan.kotabogor.go.id/webhooks/twilio",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.org"},
        status=403,
    ),
    Case(
        "no auth token configured",
        INCOMING,
        "twilio/sms_text.form",
        settings={"ADUAN_TWILIO_AUTH_TOKEN": ""},
        status=403,
        body_contains="ADUAN_TWILIO_AUTH_TOKEN",
    ),
    Case(
        "signed with a Webhooks SharedKey",
        INCOMING,
        "twilio/sms_text.form",
        headers={"X-Twilio-Webhooks-Signature-Settings": "key=KS123,algorithm=HMAC_SHA256"},
        status=403,
        body_contains="unsupported_signature",
    ),
    Case(
        "missing MessageSid",
        INCOMING,
        "twilio/sms_text.form",
        fields={"MessageSid": None, "SmsSid": None, "SmsMessageSid": None},
        status=400,
        body_contains="MessageSid",
    ),
    Case(
        "missing From",
        INCOMING,
        "twilio/sms_text.form",
        fields={"From": None},
        status=400,
        body_contains='"field": "From"',
    ),
    Case(
        "From that is not a phone number",
        INCOMING,
        "twilio/sms_text.form",
        fields={"From": "12345"},
        status=400,
        body_contains='"field": "From"',
    ),
    Case(
        "From on a channel aduan does not answer",
        INCOMING,
        "twilio/sms_text.form",
        fields={"From": "messenger:4477889900"},
        status=400,
        body_contains="unsupported_channel",
    ),
    Case(
        "NumMedia that is not a number",
        INCOMING,
        "twilio/whatsapp_image.form",
        fields={"NumMedia": "lots"},
        status=400,
        body_contains="NumMedia",
    ),
    Case(
        "NumMedia that promises more media than it carries",
        INCOMING,
        "twilio/whatsapp_image.form",
        fields={"NumMedia": "2"},
        status=400,
        body_contains="MediaUrl1",
    ),
    Case(
        "a media URL that is not http(s)",
        INCOMING,
        "twilio/whatsapp_image.form",
        fields={"MediaUrl0": "file:///etc/passwd"},
        status=400,
        body_contains="MediaUrl0",
    ),
    Case(
        "latitude out of range",
        INCOMING,
        "twilio/whatsapp_location.form",
        fields={"Latitude": "123.4"},
        status=400,
        body_contains="Latitude",
    ),
    Case(
        "latitude without longitude",
        INCOMING,
        "twilio/whatsapp_location.form",
        fields={"Longitude": None},
        status=400,
    ),
    Case(
        "a Body longer than any SMS or WhatsApp message",
        INCOMING,
        "twilio/sms_text.form",
        fields={"Body": "x" * 5001},
        status=413,
        body_contains="Body",
    ),
    Case(
        "JSON instead of a form",
        INCOMING,
        "twilio/sms_text.form",
        content_type="application/json",
        status=415,
    ),
    Case(
        "a body larger than any Twilio webhook",
        INCOMING,
        "twilio/sms_text.form",
        fields={"Padding": "x" * 70_000},
        status=413,
    ),
    Case(
        "GET is not a webhook",
        INCOMING,
        method="GET",
        sign="missing",
        status=405,
    ),
    # Status callbacks.
    Case(
        "status callback: delivered",
        STATUS,
        "twilio/status_delivered.form",
        status=204,
        receipts=[("SMd1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6", "delivered", None)],
    ),
    Case(
        "status callback: undelivered with an error code",
        STATUS,
        "twilio/status_failed.form",
        status=204,
        receipts=[("SMe2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7", "undelivered", "twilio 30008")],
    ),
    Case(
        "status callback: WhatsApp read",
        STATUS,
        "twilio/whatsapp_status_read.form",
        status=204,
        receipts=[("SMf3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8", "read", None)],
    ),
    Case(
        "status callback with a bad signature",
        STATUS,
        "twilio/status_delivered.form",
        sign="wrong_secret",
        status=403,
    ),
    Case(
        "status callback without a status",
        STATUS,
        "twilio/status_delivered.form",
        fields={"MessageStatus": None, "SmsStatus": None},
        status=400,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
async def test_twilio(case: Case, redis_url: str, tmp_path: Path) -> None:
    check(case, await run(case, sign, redis_url, tmp_path, FORM))
