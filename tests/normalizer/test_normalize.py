"""Commands and the whole `InboundMessage` → `Complaint` step."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from channels.base import Attachment, Location
from config.data import load_taxonomy
from normalizer import Rules, idempotency_key, normalize
from normalizer.commands import parse_command
from normalizer.complaint import Complaint
from normalizer.text import fingerprint
from tests.normalizer.corpus import message


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules(taxonomy=load_taxonomy())


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("STATUS BGR-2026-004217-3", "BGR-2026-004217-3"),
        ("status bgr-2026-004217-5", "bgr-2026-004217-5"),
        ("cek bgr2026 0042173", "bgr2026 0042173"),
        ("Cek BGR 2026 004217 5", "BGR 2026 004217 5"),
        ("Status: BGR-2026-004217-5", "BGR-2026-004217-5"),
        ("STATUS:BGR-2026-004217-5", "BGR-2026-004217-5"),
        ("status #BGR-2026-004217-5", "BGR-2026-004217-5"),
        ("Status - BGR-2026-R482193-7", "BGR-2026-R482193-7"),
        ("check BGR-2026-004217-5", "BGR-2026-004217-5"),
        ("lacak BGR-2026-004217-5 ya min", "BGR-2026-004217-5 ya min"),
        ("cek status laporan BGR-2026-004217-5", "status laporan BGR-2026-004217-5"),
        ("Status: BGR-2026-004217-5 kapan diperbaiki?", "BGR-2026-004217-5 kapan diperbaiki?"),
        ("status 2026-004217-5", "2026-004217-5"),
        ("STATUS", ""),
        ("status?", "?"),
        ("Cek laporan saya dong", "laporan saya dong"),
        ("status of my report?", "of my report?"),
        ("  status\n BGR-2026-004217-5 ", "BGR-2026-004217-5"),
    ],
)
def test_status_command(text: str, rest: str) -> None:
    assert parse_command(text) == ("status", rest)


@pytest.mark.parametrize("text", ["STOP", "stop", "Stop.", "  berhenti!  ", "UNSUBSCRIBE"])
def test_stop_command(text: str) -> None:
    assert parse_command(text) == ("stop", "")


@pytest.mark.parametrize(
    "text",
    [
        "Status jalan di depan rumah saya rusak parah, sudah 3 bulan tidak diperbaiki",
        "status jalan di Kel. Tegal Gundil gimana ya, lubangnya makin gede",
        "Status lahan di belakang SDN Bantarjati 5 tidak jelas, jadi tempat buang sampah",
        "Cek saluran air di Jl. Pandu Raya, mampet total sejak kemarin",
        "cek ke lapangan dong pak, PJU di gang Haji Usman mati",
        "Check the drains on Jalan Semeru, they are blocked again",
        "Status BGR-2026-004217-5: jalannya sudah ditambal tapi sekarang berlubang lagi di "
        "sebelah kiri, tolong dicek lagi karena sudah ada dua motor yang jatuh minggu ini",
        "Stop pungli di pasar Bogor!",
        "stop parkir liar di depan rumah saya",
        "Statusnya gimana?",
        "Lampu jalan mati. STATUS BGR-2026-004217-5",
        "",
    ],
)
def test_complaints_are_not_commands(text: str) -> None:
    assert parse_command(text) == (None, text)


def test_status_command_through_normalize(rules: Rules) -> None:
    complaint = normalize(message("STATUS BGR-2026-004217-5"), rules)
    assert complaint.command == "status"
    assert complaint.ticket_ref == "BGR-2026-004217-5"
    assert complaint.ticket_ref_valid is True


def test_status_with_a_wrong_check_digit(rules: Rules) -> None:
    complaint = normalize(message("cek bgr2026 0042173"), rules)
    assert complaint.command == "status"
    assert (complaint.ticket_ref, complaint.ticket_ref_valid) == ("BGR-2026-004217-3", False)


def test_stop_through_normalize(rules: Rules) -> None:
    complaint = normalize(
        message("STOP", channel="whatsapp", provider="meta", sender="6281234567890"), rules
    )
    assert (complaint.command, complaint.ticket_ref) == ("stop", None)


def test_long_status_text_is_a_follow_up(rules: Rules) -> None:
    text = (
        "Status BGR-2026-004217-5: jalannya sudah ditambal tapi sekarang berlubang lagi di "
        "sebelah kiri, tolong dicek lagi karena sudah ada dua motor yang jatuh minggu ini"
    )
    complaint = normalize(message(text), rules)
    assert complaint.command is None
    assert complaint.ticket_ref == "BGR-2026-004217-5"
    assert complaint.topic == "infrastruktur"


def test_email_reply(rules: Rules) -> None:
    body = (
        "Sampai hari ini sampahnya belum diangkut.\r\n\r\n"
        "Pada Sen, 2 Mar 2026 pukul 10.15 Aduan Kota Bogor <aduan@kotabogor.go.id> menulis:\r\n"
        "> Laporan Anda BGR-2026-000001-9 sudah kami terima.\r\n"
    )
    msg = message(
        body,
        channel="email",
        provider="smtp",
        sender="Budi@Example.com",
        sender_name="Budi",
        subject="Re: [BGR-2026-004217-5] Sampah di TPS Pasar Anyar",
        reply_to=("<abc@kotabogor.go.id>",),
    )
    complaint = normalize(msg, rules)
    assert complaint.text == "Sampai hari ini sampahnya belum diangkut."
    assert complaint.ticket_ref == "BGR-2026-004217-5"  # from the subject, not the quote
    assert complaint.title == "Re: [BGR-2026-004217-5] Sampah di TPS Pasar Anyar"
    assert complaint.topic == "sampah"
    assert complaint.reporter.address == "budi@example.com"
    assert complaint.language == "id"
    assert complaint.reply_to == ("<abc@kotabogor.go.id>",)


def test_html_email(rules: Rules) -> None:
    msg = message(
        "<p>The street lights on <b>Jalan Dadali</b> are out.</p><script>x()</script>",
        channel="email",
        provider="smtp",
        sender="ann@example.org",
        raw={"content_type": "text/html"},
    )
    complaint = normalize(msg, rules)
    assert complaint.text == "The street lights on Jalan Dadali are out."
    assert (complaint.topic, complaint.language) == ("penerangan", "en")


def test_quote_marks_are_kept_outside_email(rules: Rules) -> None:
    text = "> ini kutipan\nLampu jalan mati"
    assert normalize(message(text), rules).text == text


def test_fields(rules: Rules) -> None:
    location = Location(lat=-6.5971, lon=106.806, address="Jl. Pajajaran")
    msg = message(
        "  Jalan   BERLUBANG di Jl. Pajajaran!! ", location=location, recipient="+6281100001111"
    )
    complaint = normalize(msg, rules)
    assert complaint.text == "Jalan BERLUBANG di Jl. Pajajaran!!"
    assert complaint.title == complaint.text
    assert complaint.fingerprint == fingerprint("jalan berlubang di jl pajajaran")
    assert complaint.topic == "infrastruktur"
    assert "berlubang" in complaint.topic_keywords
    assert complaint.confidential is False
    assert complaint.location == location
    assert complaint.recipient == "+6281100001111"
    assert complaint.received_at == msg.received_at
    assert (complaint.channel, complaint.provider, complaint.provider_message_id) == (
        "sms",
        "twilio",
        "SM0001",
    )
    assert complaint.ticket_ref is None and complaint.ticket_ref_valid is True


def test_same_text_on_two_channels_has_one_fingerprint(rules: Rules) -> None:
    sms = normalize(message("Lampu jalan mati di Jl. Dadali"), rules)
    mail = normalize(
        message(
            "lampu jalan MATI di jl dadali.",
            channel="email",
            provider="smtp",
            sender="a@example.com",
        ),
        rules,
    )
    assert sms.fingerprint == mail.fingerprint
    assert sms.idempotency_key != mail.idempotency_key


def test_idempotency_key() -> None:
    key = idempotency_key("whatsapp", "meta", "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFjNFQjA=")
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    assert key == idempotency_key("whatsapp", "meta", "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABIYFjNFQjA=")
    assert key != idempotency_key("whatsapp", "meta", "wamid.other")
    assert idempotency_key("sms", "twilio", "x") != idempotency_key("whatsapp", "twilio", "x")
    # The fields are separated: moving a character from one to the next is another key.
    assert idempotency_key("sms", "twilio", "ab") != idempotency_key("sms", "twilioa", "b")


def test_language_hint(rules: Rules) -> None:
    assert normalize(message("Lampu jalan mati", language_hint="en"), rules).language == "en"
    assert normalize(message("The street light is out", language_hint="fr"), rules).language == "en"
    assert normalize(message("BGR"), rules).language == "id"  # default when no evidence
    english_default = Rules(taxonomy=rules.taxonomy, default_language="en")
    assert normalize(message("BGR"), english_default).language == "en"


def test_complaint_round_trips_through_json(rules: Rules) -> None:
    msg = message("RAHASIA: ada pungli di kelurahan", location=Location(lat=-6.6, lon=106.8))
    complaint = normalize(msg, rules)
    again = Complaint.from_dict(json.loads(json.dumps(complaint.to_dict())))
    assert again == complaint
    assert again.confidential is True and again.topic == "pungli"


def test_the_queue_payload_holds_every_field_as_plain_json(rules: Rules) -> None:
    """What a worker reads from the queue: every field of the schema, nested values as
    plain dicts and lists, and nothing else."""
    photo = Attachment(content_type="image/jpeg", size=3, filename="a.jpg", url="https://x/a")
    msg = message(
        "Jalan berlubang",
        sender_name="Siti",
        location=Location(lat=-6.6, lon=106.8, label="Tugu Kujang"),
        attachments=(photo,),
        reply_to=("<a@example.org>",),
    )
    data = normalize(msg, rules).to_dict()
    assert list(data) == [f.name for f in dataclasses.fields(Complaint)]
    assert data["reporter"] == {
        "kind": "phone",
        "address": "+6281234567890",
        "name": "Siti",
        "email": None,
    }
    assert data["location"] == {"lat": -6.6, "lon": 106.8, "address": None, "label": "Tugu Kujang"}
    assert data["attachments"] == [dataclasses.asdict(photo)]
    assert data["reply_to"] == ["<a@example.org>"]
    assert data["received_at"] == "2026-03-02T08:30:00+00:00"
    assert json.loads(json.dumps(data)) == data
