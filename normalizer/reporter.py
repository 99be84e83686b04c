"""Reporter addresses: phones to E.164, email addresses lower-cased."""

from __future__ import annotations

import re

import phonenumbers

from normalizer.complaint import Reporter


class InvalidContact(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")


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
