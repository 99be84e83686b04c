"""GSM-7 and UCS-2: what fits in one SMS segment, and lookalikes made plain."""

from __future__ import annotations

import pytest

from channels.sms import fold_to_gsm7, segments
from config.data import load_replies


@pytest.mark.parametrize(
    ("text", "encoding", "units", "count"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters cost two septets
        ("[" * 81, "GSM-7", 162, 2),
        ("Aduan diterima 🙏", "UCS-2", 17, 1),  # the emoji is a surrogate pair
        ("é" * 160, "GSM-7", 160, 1),  # é is in the GSM-7 alphabet
        ("ê" * 70, "UCS-2", 70, 1),  # ê is not
        ("ê" * 71, "UCS-2", 71, 2),
        ("ê" * 135, "UCS-2", 135, 3),
    ],
)
def test_segments(text: str, encoding: str, units: int, count: int) -> None:
    shape = segments(text)
    assert (shape.encoding, shape.units, shape.count) == (encoding, units, count)


def test_typographic_lookalikes_are_folded_so_the_reply_stays_gsm7() -> None:
    text = "Aduan “BGR-2026-000001-5” diterima – terima kasih…"
    folded = fold_to_gsm7(text)
    assert folded == 'Aduan "BGR-2026-000001-5" diterima - terima kasih...'
    assert segments(text).encoding == "UCS-2"
    assert segments(folded).encoding == "GSM-7"


def test_text_that_cannot_be_gsm7_is_left_as_written() -> None:
    text = "Terima kasih 🙏 “laporan” Anda"
    assert fold_to_gsm7(text) == text


SMS_REPLIES = (
    "received",
    "received_confidential",
    "received_followup",
    "status",
    "not_found",
    "bad_check_digit",
    "status_changed",
)


@pytest.mark.parametrize("language", ["id", "en"])
def test_every_sms_reply_template_fits_one_gsm7_segment(language: str) -> None:
    replies = load_replies()
    values = {
        "ticket": "BGR-2026-R482193-7",
        "receipt": "K7QX-2M9D-PL4B",
        "status": max(replies.status_names[language].values(), key=len),
        "track_url": "https://aduan.kotabogor.go.id/track/BGR-2026-R482193-7",
    }
    for name in SMS_REPLIES:
        body = fold_to_gsm7(replies.render(language, name, **values))
        shape = segments(body)
        assert (shape.encoding, shape.count) == ("GSM-7", 1), (name, len(body), body)
