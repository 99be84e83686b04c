"""Commands a reporter can text: `STATUS <ticket>`, `CEK <ticket>`, `STOP`."""

from __future__ import annotations

import re

_STATUS = re.compile(r"^\s*(status|cek|check|lacak)\b[\s:#-]*(.*)$", re.IGNORECASE | re.DOTALL)
_STOP = re.compile(r"^\s*(stop|berhenti|unsubscribe)\s*[.!]?\s*$", re.IGNORECASE)
# What may follow the command word: nothing, a few words about "my report", or something
# that starts like a ticket number (letters then the year, or digits). "Status jalan di
# depan rumah saya rusak" and "Cek saluran air di Jl. Pandu Raya" are complaints.
_STATUS_REST = re.compile(
    r"^(?:(?:status|tiket|ticket|laporan|laporannya|aduan|pengaduan|nomor|nomer|no|saya|sy|"
    r"my|report|complaint|of|for|untuk|utk|dong|ya|min|pls|please)\b[\s.:#-]*)*"
    r"(?:(?:[a-z]{2,5}[\s/-]*)?\d{4}.*|[?!.]*)$",
    re.IGNORECASE | re.DOTALL,
)


def parse_command(text: str) -> tuple[str | None, str]:
    """The command and what follows it; (None, text) when the text is a complaint."""
    if _STOP.match(text):
        return "stop", ""
    match = _STATUS.match(text)
    if match and len(text) <= 120 and _STATUS_REST.match(match.group(2).strip()):
        return "status", match.group(2).strip()
    return None, text
