"""Reporter addresses: Indonesian phone numbers to E.164, email addresses lower-cased."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata, PhoneNumberType

from config.data import load_taxonomy
from normalizer import Rules, normalize
from normalizer.complaint import Reporter
from normalizer.reporter import (
    InvalidContact,
    _plain_e164,
    normalize_email,
    normalize_phone,
    reporter_for,
)
from tests.normalizer.corpus import message


@pytest.mark.parametrize(
    "value",
    [
        "0812-3456-7890",
        "081234567890",
        "0812 3456 7890",
        "(0812) 3456-7890",
        "+62 812 3456 7890",
        "+62-812-3456-7890",
        "+6281234567890",
        "6281234567890",  # WhatsApp id (WaId): no '+'
        "whatsapp:+6281234567890",  # Twilio WhatsApp
        "WhatsApp:+6281234567890",
        "tel:+62-812-3456-7890",
        "sms:081234567890",
        "  +62 812 3456 7890  ",
    ],
)
def test_indonesian_mobile_to_e164(value: str) -> None:
    assert normalize_phone(value, "ID") == "+6281234567890"


def test_landline_and_foreign_numbers() -> None:
    assert normalize_phone("(0251) 832-1075", "ID") == "+622518321075"  # Bogor landline
    assert normalize_phone("+1 202 555 0123", "ID") == "+12025550123"
    assert normalize_phone("12025550123", "ID") == "+12025550123"  # WaId of a US number
    assert normalize_phone("whatsapp:+447700900123", "ID") == "+447700900123"


@pytest.mark.parametrize(
    "value",
    ["", "   ", "abc", "12345", "0812", "+62", "+62 812 3456 7890 1234 5678", "whatsapp:"],
)
def test_invalid_phone(value: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        normalize_phone(value, "ID")
    assert caught.value.field == "phone"
    with pytest.raises(InvalidContact) as caught:
        normalize_phone(value, "ID", field="From")
    assert caught.value.field == "From"
    assert "From" in caught.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Budi.Santoso@Example.COM", "budi.santoso@example.com"),
        ("  warga+aduan@Gmail.com ", "warga+aduan@gmail.com"),
        ("mailto:Siti@KotaBogor.go.id", "siti@kotabogor.go.id"),
        ("MAILTO:siti@kotabogor.go.id", "siti@kotabogor.go.id"),
    ],
)
def test_email_lower_cased(value: str, expected: str) -> None:
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "budi",
        "budi@",
        "@example.com",
        "budi@example",
        "budi at example.com",
        "budi @example.com",
        "budi@@example.com",
        "a@b@example.com",
        "Budi <budi@example.com>",
        "budi@example.com, siti@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_invalid_email(value: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        normalize_email(value)
    assert caught.value.field == "email"


def test_reporter_for_sms_and_whatsapp() -> None:
    assert reporter_for("sms", "+62 812 3456 7890", None, "  Budi  ", "ID") == Reporter(
        kind="phone", address="+6281234567890", name="Budi"
    )
    assert reporter_for("whatsapp", "6281234567890", None, "   ", "ID") == Reporter(
        kind="phone", address="+6281234567890", name=None
    )


def test_reporter_for_email() -> None:
    assert reporter_for("email", "Budi@Example.com", None, "Budi", "ID") == Reporter(
        kind="email", address="budi@example.com", name="Budi"
    )


@pytest.mark.parametrize(
    ("channel", "sender"), [("sms", "12345"), ("whatsapp", "abc"), ("email", "not-an-address")]
)
def test_reporter_for_provider_channels_blames_from(channel: str, sender: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        reporter_for(channel, sender, None, None, "ID")
    assert caught.value.field == "From"


def test_reporter_for_web() -> None:
    both = reporter_for("web", "0812-3456-7890", "Budi@Example.com", "Budi", "ID")
    assert both == Reporter(
        kind="phone", address="+6281234567890", name="Budi", email="budi@example.com"
    )
    email_only = reporter_for("api", "Budi@Example.com", None, None, "ID")
    assert email_only == Reporter(
        kind="email", address="budi@example.com", email="budi@example.com"
    )
    phone_in_alt = reporter_for("web", "", "+62 812 3456 7890", None, "ID")
    assert phone_in_alt == Reporter(kind="phone", address="+6281234567890")
    anonymous = reporter_for("web", "", None, None, "ID")
    assert anonymous == Reporter(kind="web", address=None)


@pytest.mark.parametrize(
    ("sender", "alt", "field"),
    [("12345", None, "phone"), ("", "budi@", "email"), ("0812-3456-7890", "x@y", "email")],
)
def test_reporter_for_web_names_the_bad_field(sender: str, alt: str | None, field: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        reporter_for("web", sender, alt, None, "ID")
    assert caught.value.field == field


def test_normalize_uses_the_reporter() -> None:
    rules = Rules(taxonomy=load_taxonomy())
    complaint = normalize(
        message("Lampu jalan mati", channel="whatsapp", provider="meta", sender="6281234567890"),
        rules,
    )
    assert complaint.reporter.address == "+6281234567890"
    with pytest.raises(InvalidContact):
        normalize(message("Lampu jalan mati", sender="12345"), rules)


def _parsed_in_full(value: str) -> str | None:
    """What phonenumbers itself makes of `value`: E.164 when possible, else None."""
    try:
        number = phonenumbers.parse(value, "ID")
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _e164_samples() -> list[str]:
    """Every region's example numbers written as E.164, and others near them: with the
    region's trunk prefix (or a 0) after the country code, too short, too long; and random
    `+digits`, unknown country codes among them."""
    samples = []
    rng = random.Random(8)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        trunk = PhoneMetadata.metadata_for_region(region).national_prefix or "0"
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            code = example.country_code
            national = phonenumbers.national_significant_number(example)
            samples += [
                f"+{code}{national}",
                f"+{code}{trunk}{national}",
                f"+{code}0{national}",
                f"+{code}{national[:-3]}",
                f"+{code}{national}{rng.randrange(10**3):03d}",
            ]
    for _ in range(3000):
        samples.append("+" + str(rng.randrange(10**6, 10**15)))
    return samples


def test_numbers_written_as_e164_read_as_phonenumbers_reads_them() -> None:
    """Numbers already in E.164 skip phonenumbers' parser (`_plain_e164`, a tenth of the
    gateway's time per webhook): whatever it answers, it is what the full parse answers,
    and what it leaves to the parser, the parser still answers."""
    taken = 0
    for value in _e164_samples():
        expected = _parsed_in_full(value)
        fast = _plain_e164(value)
        if fast is not None:
            taken += 1
            assert fast == expected, value
        if expected is None:
            with pytest.raises(InvalidContact):
                normalize_phone(value, "ID")
        else:
            assert normalize_phone(value, "ID") == expected, value
    assert taken > 1000
    assert _plain_e164("+6281234567890") == "+6281234567890"  # the usual Twilio `From`
