"""Taking the reporter's own identity out of a confidential complaint's words.

A confidential report hides who sent it; but people sign their mail ("Hormat saya,
Wiryawan Sasmitapura"), add "hubungi saya di 0812…", or quote their own address. Operators
without the integrity role read the text, so in a confidential complaint the sender's
name, email address and phone number are replaced where they appear in it. Only the
sender's own identity is touched: the names of the accused are the report.
"""

from __future__ import annotations

import re

from normalizer.complaint import Reporter

HIDDEN = "[identitas disembunyikan]"
# A run of digits as people write a phone number: +62 812-3456-7890, (0251) 832 1234.
_NUMBER_RUN = re.compile(r"(?:\+|\()?\d[\d\s().\-]{5,}\d")
_MIN_NAME_PART = 4


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _phone_tail(reporter: Reporter) -> str | None:
    """The national significant digits of the reporter's number, or None."""
    if reporter.kind != "phone" or not reporter.address:
        return None
    digits = _digits(reporter.address)
    # E.164 "+62 812…": the subscriber part is what people write after 0 or +62.
    tail = digits[2:] if reporter.address.startswith("+62") else digits[-9:]
    return tail if len(tail) >= 7 else None


def _name_pattern(name: str | None) -> re.Pattern[str] | None:
    if not name:
        return None
    parts = [p for p in re.split(r"\s+", name.strip()) if len(p) >= _MIN_NAME_PART]
    options = [re.escape(name.strip()), *(re.escape(p) for p in parts)]
    options = [o for o in options if o]
    if not options:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(options) + r")(?!\w)", re.IGNORECASE)


def redact_identity(text: str, reporter: Reporter) -> str:
    """`text` with the reporter's email address, phone number and name replaced."""
    if not text:
        return text
    for address in {a for a in (reporter.email, reporter.address) if a and "@" in a}:
        text = re.sub(re.escape(address), HIDDEN, text, flags=re.IGNORECASE)
    tail = _phone_tail(reporter)
    if tail:
        text = _NUMBER_RUN.sub(
            lambda m: HIDDEN if _digits(m.group()).endswith(tail) else m.group(), text
        )
    pattern = _name_pattern(reporter.name)
    if pattern is not None:
        text = pattern.sub(HIDDEN, text)
    return text
