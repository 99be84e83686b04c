"""A confidential complaint's words lose the sender's own name, email and number."""

from __future__ import annotations

import pytest

from config.data import load_taxonomy
from normalizer import Rules, normalize
from normalizer.redact import HIDDEN
from tests.normalizer.corpus import message

RULES = Rules(taxonomy=load_taxonomy())
PUNGLI = "Oknum minta pungli Rp100.000 untuk izin usaha"


def test_a_signed_confidential_mail_hides_the_senders_name_and_address() -> None:
    complaint = normalize(
        message(
            f"{PUNGLI}.\n\nHormat saya,\nWiryawan Sasmitapura\nwiryawan.s@example.org",
            channel="email",
            provider="smtp",
            sender="Wiryawan.S@Example.org",
            sender_name="Wiryawan Sasmitapura",
            subject="Laporan pungli dari Wiryawan",
        ),
        RULES,
    )
    assert complaint.confidential
    for text in (complaint.text, complaint.subject or "", complaint.title):
        assert "wiryawan" not in text.lower()
        assert "sasmitapura" not in text.lower()
    assert HIDDEN in complaint.text
    assert "Rp100.000" in complaint.text  # the report itself stays


@pytest.mark.parametrize(
    "written", ["0812-3456-7890", "+62 812 3456 7890", "(0812) 34567890", "6281234567890"]
)
def test_the_senders_number_written_in_a_confidential_sms_is_hidden(written: str) -> None:
    complaint = normalize(
        message(f"{PUNGLI}. Hubungi saya di {written} kalau perlu.", sender="+6281234567890"),
        RULES,
    )
    assert complaint.confidential
    assert "34567890" not in complaint.text.replace(" ", "").replace("-", "")
    assert f"Hubungi saya di {HIDDEN} kalau perlu" in complaint.text


def test_other_people_and_numbers_in_the_report_are_kept() -> None:
    complaint = normalize(
        message(
            f"{PUNGLI}. Pelakunya Pak Darmawan, nomornya 0813-9999-1111, Rp50.000.",
            sender="+6281234567890",
            sender_name="Siti Aminah",
        ),
        RULES,
    )
    assert complaint.confidential
    assert "Darmawan" in complaint.text
    assert "0813-9999-1111" in complaint.text


def test_an_ordinary_complaint_keeps_its_words() -> None:
    text = "Jalan berlubang di Jl. Pajajaran, hubungi saya 0812-3456-7890. Salam, Siti Aminah"
    complaint = normalize(message(text, sender_name="Siti Aminah"), RULES)
    assert not complaint.confidential
    assert complaint.text == text
