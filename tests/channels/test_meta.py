"""WhatsApp Cloud API (Meta) webhooks: the handshake, messages and statuses, case by case."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from tests.channels.harness import SECRETS, TESTDATA, Case, check, run

WEBHOOK = "/webhooks/whatsapp"
SECRET = SECRETS["ADUAN_META_APP_SECRET"]
VERIFY = SECRETS["ADUAN_META_VERIFY_TOKEN"]
RINA, AGUS, YANTI = "+6281234567801", "+6285798765402", "+6287711122203"


def sign(case: Case, body: bytes, url: str) -> dict[str, str]:
    secret = SECRET if case.sign == "valid" else "another-apps-secret"
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}"}


def big_batch() -> bytes:
    """1,000 messages in one POST, close to Meta's 3 MB: residents arriving from a
    click-to-WhatsApp ad, whose referral (headline, body, media URLs) comes with each."""
    template = json.loads((TESTDATA / "meta/text.json").read_text())
    value = template["entry"][0]["changes"][0]["value"]
    first = value["messages"][0]
    cdn = (
        "https://scontent.xx.fbcdn.net/v/t45.1600-4/" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789" * 20
    )
    referral = {
        "source_url": "https://fb.me/3cr4Wqqkv",
        "source_id": "120226305854810726",
        "source_type": "ad",
        "headline": "Lapor Pak Wali! Sampaikan aduan Anda lewat WhatsApp",
        "body": "Jalan rusak, sampah, lampu mati? Kirim aduan ke Pemkot Bogor. " * 8,
        "media_type": "image",
        "image_url": cdn + "?stp=dst-jpg_s600x600",
        "thumbnail_url": cdn + "?stp=dst-jpg_p100x100",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4Xv",
    }
    value["messages"] = [
        {
            **first,
            "from": f"62812{i:08d}",
            "id": f"wamid.BIGBATCH{i:05d}",
            "text": {"body": f"Lampu jalan mati di gang {i}, mohon diperbaiki."},
            "referral": referral,
        }
        for i in range(1000)
    ]
    body = json.dumps(template).encode()
    assert 2_500_000 < len(body) < 3_200_000, len(body)
    return body


def _media_ids(complaints: list[dict[str, Any]]) -> None:
    urls = [a["url"] for c in complaints for a in c["attachments"]]
    assert urls == ["meta-media:1479537139650973"], urls
    assert complaints[0]["attachments"][0]["data_b64"] is None


def _kept_raw(kind: str) -> Any:
    def check_raw(complaints: list[dict[str, Any]]) -> None:
        [complaint] = complaints
        assert complaint["raw"]["type"] == kind
        assert complaint["raw"]["supported"] is False
        assert complaint["raw"]["message"]["type"] == kind

    return check_raw


def _thousand(complaints: list[dict[str, Any]]) -> None:
    assert len(complaints) == 1000
    assert len({c["idempotency_key"] for c in complaints}) == 1000


def _old_timestamp(complaints: list[dict[str, Any]]) -> None:
    assert complaints[0]["received_at"].startswith("2025-12-04T09:20:00")


CASES = [
    # The verification handshake.
    Case(
        "handshake with the right verify token echoes the challenge",
        WEBHOOK,
        method="GET",
        sign="missing",
        query=f"?hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=1158201444",
        body_contains="1158201444",
        content_type_is="text/plain",
    ),
    Case(
        "handshake with a wrong verify token",
        WEBHOOK,
        method="GET",
        sign="missing",
        query="?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1158201444",
        status=403,
    ),
    Case(
        "handshake that is not a subscription",
        WEBHOOK,
        method="GET",
        sign="missing",
        query=f"?hub.mode=unsubscribe&hub.verify_token={VERIFY}&hub.challenge=1",
        status=403,
    ),
    Case(
        "handshake without a challenge",
        WEBHOOK,
        method="GET",
        sign="missing",
        query=f"?hub.mode=subscribe&hub.verify_token={VERIFY}",
        status=400,
    ),
    Case(
        "handshake when no verify token is configured",
        WEBHOOK,
        method="GET",
        sign="missing",
        query="?hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
        settings={"ADUAN_META_VERIFY_TOKEN": ""},
        status=403,
        body_contains="ADUAN_META_VERIFY_TOKEN",
    ),
    # Message types.
    Case(
        "text",
        WEBHOOK,
        "meta/text.json",
        body_contains='"messages": 1',
        texts=["Jalan di depan SDN Polisi 1 berlubang, sudah ada motor yang jatuh."],
        senders=[RINA],
        names=["Rina Marlina"],
        channels=["whatsapp"],
        attachments=[[]],
        check=_old_timestamp,
    ),
    Case(
        "image with caption: the media id is queued for the worker",
        WEBHOOK,
        "meta/image.json",
        texts=["Got mampet, air meluber ke jalan"],
        attachments=[["image/jpeg"]],
        check=_media_ids,
    ),
    Case(
        "document keeps its file name",
        WEBHOOK,
        "meta/document.json",
        texts=["Surat keberatan warga RW 05"],
        senders=[AGUS],
        attachments=[["application/pdf"]],
        check=lambda c: (
            None
            if c[0]["attachments"][0]["filename"] == "keberatan-rw05.pdf"
            else pytest.fail("filename")
        ),
    ),
    Case(
        "voice note",
        WEBHOOK,
        "meta/audio.json",
        texts=[""],
        attachments=[["audio/ogg"]],
    ),
    Case(
        "video with caption",
        WEBHOOK,
        "meta/video.json",
        texts=["Banjir di underpass Jl. Sholeh Iskandar"],
        senders=[YANTI],
        attachments=[["video/mp4"]],
    ),
    Case(
        "location",
        WEBHOOK,
        "meta/location.json",
        texts=[""],
        locations=[
            {
                "lat": -6.5953,
                "lon": 106.7924,
                "address": "Jl. Kapten Muslihat No.21, Pabaton",
                "label": "Stasiun Bogor",
            }
        ],
    ),
    Case(
        "interactive button reply",
        WEBHOOK,
        "meta/interactive_button_reply.json",
        texts=["Jalan dan jembatan"],
        reply_to=[["wamid.HBgLMTU1NTA3ODM4ODEVAgARGBI1QjA5RkU4QjM0N0QxRkM1OTgA"]],
    ),
    Case(
        "interactive list reply",
        WEBHOOK,
        "meta/interactive_list_reply.json",
        texts=["Sampah dan kebersihan"],
    ),
    Case(
        "template quick-reply button",
        WEBHOOK,
        "meta/button.json",
        texts=["Cek status aduan"],
        senders=[AGUS],
    ),
    Case(
        "reaction is ignored",
        WEBHOOK,
        "meta/reaction.json",
        body_contains='"ignored": 1',
        texts=[],
    ),
    Case(
        "system notice (number changed) is ignored",
        WEBHOOK,
        "meta/system.json",
        body_contains='"ignored": 1',
        texts=[],
    ),
    Case(
        "unsupported type is kept raw",
        WEBHOOK,
        "meta/unsupported.json",
        texts=[""],
        senders=[YANTI],
        check=_kept_raw("unsupported"),
    ),
    Case(
        "sticker is kept raw",
        WEBHOOK,
        "meta/sticker.json",
        texts=[""],
        attachments=[[]],
        check=_kept_raw("sticker"),
    ),
    Case(
        "reply to one of our messages names it",
        WEBHOOK,
        "meta/reply_context.json",
        reply_to=[["wamid.HBgLMTU1NTA3ODM4ODEVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"]],
    ),
    Case(
        "a batch of three messages in two entries",
        WEBHOOK,
        "meta/batch_three.json",
        body_contains='"messages": 3',
        senders=[RINA, AGUS, YANTI],
        names=["Rina Marlina", "Agus", "Yanti"],
        attachments=[[], ["image/jpeg"], []],
        locations=[None, None, {"lat": -6.5886, "lon": 106.8016, "label": "Kebun Raya Bogor"}],
    ),
    Case(
        "a batch of 1,000 messages near 3 MB",
        WEBHOOK,
        body=big_batch,
        body_contains='"messages": 1000',
        check=_thousand,
    ),
    Case(
        "Meta delivering the same notification again makes nothing new",
        WEBHOOK,
        "meta/batch_three.json",
        repeat=3,
        senders=[RINA, AGUS, YANTI],
    ),
    # Statuses.
    Case(
        "statuses: delivered then read",
        WEBHOOK,
        "meta/statuses.json",
        body_contains='"statuses": 2',
        texts=[],
        receipts=[
            ("wamid.HBgNNjI4MTIzNDU2NzgwMRUCABEYEjdGNkU1RDRDM0IyQTE5ODc2NQA=", "delivered", None),
            ("wamid.HBgNNjI4MTIzNDU2NzgwMRUCABEYEjdGNkU1RDRDM0IyQTE5ODc2NQA=", "read", None),
        ],
    ),
    Case(
        "status failed with Meta's error",
        WEBHOOK,
        "meta/status_failed.json",
        receipts=[
            (
                "wamid.HBgNNjI4NTc5ODc2NTQwMhUCABEYEjFBMkIzQzRENUU2RjcwODE5MgA=",
                "failed",
                "meta 131047: Re-engagement message",
            )
        ],
    ),
    Case(
        "a message and a status in one change",
        WEBHOOK,
        "meta/mixed.json",
        texts=["Parkir liar di trotoar depan Pasar Anyar"],
        receipts=[("wamid.HBgNNjI4NTc5ODc2NTQwMhUCABEYEjlGOEU3RDZDNUI0QTM5MjgxNwA=", "sent", None)],
    ),
    Case(
        "a change that is not about messages is acknowledged and ignored",
        WEBHOOK,
        "meta/account_update.json",
        texts=[],
        receipts=[],
    ),
    Case(
        "a username-only sender (no phone number) is skipped, the rest kept",
        WEBHOOK,
        "meta/username_only.json",
        body_contains='"skipped": 1',
        texts=["Saluran air tersumbat di Perumahan Bogor Baru blok C"],
        senders=[RINA],
    ),
    Case(
        "insecure development mode accepts an unsigned notification",
        WEBHOOK,
        "meta/text.json",
        sign="missing",
        settings={"ADUAN_INSECURE_WEBHOOKS": "true", "ADUAN_META_APP_SECRET": ""},
        senders=[RINA],
    ),
    # Refused: nothing is queued.
    Case("missing signature", WEBHOOK, "meta/text.json", sign="missing", status=403),
    Case(
        "signed with another app's secret",
        WEBHOOK,
        "meta/text.json",
        sign="wrong_secret",
        status=403,
        body_contains="bad_signature",
    ),
    Case(
        "body changed after signing",
        WEBHOOK,
        "meta/text.json",
        tamper=lambda body: body.replace(b"berlubang", b"mulus!!!!"),
        status=403,
    ),
    Case(
        "a signature header in the wrong form",
        WEBHOOK,
        "meta/text.json",
        headers={"X-Hub-Signature-256": "md5=0123456789abcdef"},
        status=403,
    ),
    Case(
        "no app secret configured",
        WEBHOOK,
        "meta/text.json",
        settings={"ADUAN_META_APP_SECRET": ""},
        status=403,
        body_contains="ADUAN_META_APP_SECRET",
    ),
    Case(
        "signed but not JSON",
        WEBHOOK,
        body=b'{"object": "whatsapp_business_account", "entry": [',
        status=400,
        body_contains="invalid_json",
    ),
    Case(
        "signed JSON that is not a WhatsApp notification",
        WEBHOOK,
        body=b'{"object": "page", "entry": []}',
        status=400,
        body_contains='"field": "object"',
    ),
    Case(
        "entry that is not a list",
        WEBHOOK,
        body=b'{"object": "whatsapp_business_account", "entry": {"id": "1"}}',
        status=400,
    ),
    Case(
        "no message in the batch can be read",
        WEBHOOK,
        body=json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "1",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {"messages": [{"type": "text"}, "nonsense"]},
                            }
                        ],
                    }
                ],
            }
        ).encode(),
        status=400,
    ),
    Case(
        "a body over the 4 MB limit",
        WEBHOOK,
        body=b'{"object": "whatsapp_business_account", "entry": [], "pad": "'
        + b"x" * (4 * 1024 * 1024)
        + b'"}',
        status=413,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
async def test_meta(case: Case, redis_url: str, tmp_path: Path) -> None:
    check(case, await run(case, sign, redis_url, tmp_path, "application/json"))
