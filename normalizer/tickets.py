"""Ticket numbers: `BGR-2026-004217-5`, readable aloud, typed back by hand.

The check digit is Damm's: it catches every single-digit typo and every swap of
two adjacent digits, the two mistakes people make when they text a number back.
Confidential cases get `BGR-2026-R482193-7`: random digits, so the reference says
nothing about when or in which order the report came in.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def check_digit(digits: str) -> int:
    interim = 0
    for char in digits:
        interim = _DAMM[interim][int(char)]
    return interim


def format_ticket(prefix: str, year: int, number: int, confidential: bool = False) -> str:
    body = f"{number:06d}"
    digits = f"{year:04d}{body}"
    marker = "R" if confidential else ""
    return f"{prefix}-{year:04d}-{marker}{body}-{check_digit(digits)}"


@dataclass(frozen=True)
class TicketRef:
    """A ticket number found in text; `valid` is False when the check digit is wrong or missing
    (then `canonical` has no check digit)."""

    canonical: str
    valid: bool

    @property
    def confidential(self) -> bool:
        """A confidential case's reference: "BGR-2026-R482193-7"."""
        return _CONFIDENTIAL.search(self.canonical) is not None


_CONFIDENTIAL = re.compile(r"-\d{4}-R\d")


@functools.lru_cache(maxsize=8)
def _pattern(prefix: str) -> re.Pattern[str]:
    # The sequence is possessive and, without a separate check digit, must not be followed by
    # more digits: "BGR-2026-004217 30" is not "…-000421-7", a number that could be valid and
    # another person's case.
    return re.compile(
        rf"(?<![A-Z0-9]){re.escape(prefix.upper())}\s*[-/ ]?\s*(\d{{4}})\s*[-/ ]?\s*(R?)"
        rf"\s*(\d{{4,9}}+)(?:\s*[-/ ]?\s*(\d))?(?![0-9])(?(4)|(?!\s*[-/ ]?\s*\d))",
        re.IGNORECASE,
    )


def _ref_from_match(prefix: str, match: re.Match[str]) -> TicketRef:
    year, marker, body, check = match.groups()
    marker = marker.upper()
    if check is None:
        if len(body) < 7:
            # "BGR-2026-004217": the check digit is missing. Taking the last digit of the
            # sequence for it would name case 421, valid one time in ten: someone else's.
            return TicketRef(
                canonical=f"{prefix.upper()}-{year}-{marker}{body.zfill(6)}", valid=False
            )
        # "BGR-2026-0042175" typed without the dash: the last digit is the check digit.
        body, check = body[:-1], body[-1]
    body = body.zfill(6)
    canonical = f"{prefix.upper()}-{year}-{marker}{body}-{check}"
    return TicketRef(canonical=canonical, valid=check_digit(year + body) == int(check))


def find_ticket(text: str, prefix: str) -> TicketRef | None:
    """The first ticket number in free text, in whatever spacing or case it was typed."""
    match = _pattern(prefix).search(text)
    return None if match is None else _ref_from_match(prefix, match)


def parse_ticket(text: str, prefix: str) -> TicketRef | None:
    """A ticket number that is the whole of `text` (a URL segment, a form field)."""
    match = _pattern(prefix).fullmatch(text.strip())
    return None if match is None else _ref_from_match(prefix, match)
