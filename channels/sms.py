"""What the phone channels (SMS, WhatsApp) share: GSM-7 segment arithmetic and receipts.

One character outside the GSM-7 alphabet (an emoji, a curly quote pasted from a word
processor) switches a whole SMS to UCS-2, which cuts a segment from 160 to 70 characters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

# 3GPP TS 23.038: the default alphabet, and the extension table reached through ESC
# (each extension character costs two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

# Lookalikes that word processors and phones substitute for plain characters.
_FOLD = str.maketrans(
    {
        "‘": "'",
        "’": "'",
        "‚": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "–": "-",
        "—": "-",
        "‐": "-",
        "‑": "-",
        "−": "-",
        "…": "...",
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\t": " ",
        "•": "-",
        "·": "-",
    }
)

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True)
class Segments:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    count: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)


def segments(text: str) -> Segments:
    if is_gsm7(text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi = GSM7_SINGLE, GSM7_MULTI
        encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = UCS2_SINGLE, UCS2_MULTI
        encoding = "UCS-2"
    count = 1 if units <= single else math.ceil(units / multi)
    return Segments(encoding, units, count)


def fold_to_gsm7(text: str) -> str:
    """The text with typographic lookalikes made plain, when that makes it GSM-7.

    Anything else outside GSM-7 (an emoji, Arabic script) is left alone: it would not
    survive a substitution, so the message stays UCS-2 and says what it said.
    """
    folded = text.translate(_FOLD)
    return folded if is_gsm7(folded) else text


@dataclass(frozen=True)
class Receipt:
    """A provider's word on an outbound message: its id, the provider's status, any error."""

    provider: str
    provider_id: str
    status: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
