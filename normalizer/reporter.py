"""Reporter addresses: phones to E.164, email addresses lower-cased."""

from __future__ import annotations

import re
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber

from normalizer.complaint import Reporter


class InvalidContact(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")


# A number written as E.164 already ("+6281234567890"), as Twilio sends every one: a
# country code and a national number with no trunk prefix to strip.
_PLAIN_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@cache
def _national_prefix(country_code: int) -> tuple[bool, re.Pattern[str] | None]:
    """Whether phonenumbers knows `country_code`, and the national prefix its parser would
    strip from a number of that country (None when it has none)."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return False, None
    prefix = metadata.national_prefix_for_parsing
    return True, re.compile(prefix) if prefix else None


def _plain_e164(value: str) -> str | None:
    """`value` itself, when it is a possible number already written as E.164, the way
    `phonenumbers.parse` and `format_number` would give it back; None when only they can
    tell (no such country code, a national number that starts like a trunk prefix, or a
    number that is not possible: the full parse says why).

    Parsing is a tenth of the gateway's time per webhook, and every Twilio webhook's
    `From` is written this way. The same checks are made, from phonenumbers' own data."""
    if _PLAIN_E164.fullmatch(value) is None:
        return None
    digits = value[1:]
    for length in (1, 2, 3):  # country codes are prefix-free
        country_code = int(digits[:length])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[length:]
    known, trunk = _national_prefix(country_code)
    if not known or national.startswith("0") or (trunk is not None and trunk.match(national)):
        return None
    number = PhoneNumber(country_code=country_code, national_number=int(national))
    if (
        phonenumbers.is_possible_number_with_reason(number)
        != phonenumbers.ValidationResult.IS_POSSIBLE
    ):
        return None
    return value


def normalize_phone(
    value: str, region: str, field: str = "phone", *, bare_digits_are_international: bool = True
) -> str:
    value = value.strip()
    for scheme in ("whatsapp:", "tel:", "sms:"):
        if value.lower().startswith(scheme):
            value = value[len(scheme) :]
    if (
        bare_digits_are_international
        and value.isdigit()
        and len(value) > 9
        and not value.startswith("0")
    ):
        # WhatsApp ids (WaId) and some providers give the number without '+'. A person
        # typing "81234567890" into the web form means a local number, not Japan.
        value = "+" + value
    plain = _plain_e164(value)
    if plain is not None:
        return plain
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise InvalidContact(field, f"'{field}' is not a phone number.") from None
    # IS_POSSIBLE_LOCAL_ONLY ("12345" → +6212345) cannot be called or texted back.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidContact(field, f"'{field}' is not a possible phone number.")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_email(value: str, field: str = "email") -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    if not _EMAIL.match(value) or len(value) > 254:
        raise InvalidContact(field, f"'{field}' is not an email address.")
    return value.lower()


def reporter_for(
    channel: str, sender: str, alt_sender: str | None, name: str | None, region: str
) -> Reporter:
    name = name.strip() if name and name.strip() else None
    if channel in ("sms", "whatsapp"):
        address = normalize_phone(
            sender, region, "From", bare_digits_are_international=channel == "whatsapp"
        )
        return Reporter(kind="phone", address=address, name=name)
    if channel == "email":
        return Reporter(kind="email", address=normalize_email(sender, "From"), name=name)
    # The web form and the app: a phone, an email, both or neither.
    phone = email = None
    for value in (sender, alt_sender):
        if not value:
            continue
        if "@" in value:
            email = normalize_email(value)
        else:
            phone = normalize_phone(value, region, bare_digits_are_international=False)
    if phone:
        return Reporter(kind="phone", address=phone, name=name, email=email)
    if email:
        return Reporter(kind="email", address=email, name=name, email=email)
    return Reporter(kind="web", address=None, name=name)
