"""Text cleaning: HTML to text, quoted history and signatures cut, whitespace, fingerprints."""

from __future__ import annotations

import re

import pytest

from normalizer.text import clean_text, fingerprint, html_to_text, strip_quoted, title_of, words

TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>")

HTML_SAMPLES = [
    '<div dir="ltr">Sampah <b>numpuk</b>&nbsp;di TPS <i>Pasar Anyar</i></div>',
    "<html><head><title>x</title><style>p { color: red }</style></head>"
    "<body><p>Lampu jalan mati</p><p>sejak &lt;3 hari&gt;</p></body></html>",
    '<p>Jalan rusak</p><script>alert("xss"); document.cookie</script><p>tolong</p>',
    '<img src=x onerror="alert(1)">Banjir<iframe src="https://evil.example"></iframe>',
    "<table><tr><td>Nama</td><td>Budi</td></tr><tr><td>Isi</td><td>Got mampet</td></tr></table>",
    "<ul><li>selokan mampet</li><li>air meluap</li></ul><!-- <b>comment</b> -->",
    '<a href="javascript:alert(1)">klik</a> <SCRIPT SRC=//evil.example/x.js></SCRIPT>ok',
    "<p>unclosed <b>bold <i>italic",
]


@pytest.mark.parametrize("markup", HTML_SAMPLES)
def test_html_leaves_no_tags(markup: str) -> None:
    for text in (clean_text(markup, is_html=True), clean_text(markup)):
        assert not TAG.search(text), text
        assert "alert" not in text and "document.cookie" not in text
        assert "color: red" not in text


def test_html_keeps_the_words_and_line_breaks() -> None:
    assert clean_text(HTML_SAMPLES[0], is_html=True) == "Sampah numpuk di TPS Pasar Anyar"
    assert clean_text(HTML_SAMPLES[2], is_html=True) == "Jalan rusak\ntolong"
    assert clean_text(HTML_SAMPLES[5], is_html=True) == "selokan mampet\nair meluap"
    assert clean_text("baris satu<br>baris dua<br/>tiga", is_html=True) == (
        "baris satu\nbaris dua\ntiga"
    )
    assert "Got mampet" in clean_text(HTML_SAMPLES[4], is_html=True)


def test_html_entities_are_decoded() -> None:
    assert html_to_text("Jl. M.H. Thamrin &amp; Jl. Sudirman &#8211; caf&eacute;") == (
        "Jl. M.H. Thamrin & Jl. Sudirman – café"
    )


def test_plain_text_with_angle_brackets_is_left_alone() -> None:
    text = "Suhu > 38 derajat dan trombosit < 100 ribu"
    assert clean_text(text) == text


EMAIL_WITH_HISTORY = """Jalan di depan rumah saya masih rusak.
Mohon ditindaklanjuti.

On Mon, 2 Mar 2026 at 10:15, Aduan Kota Bogor <aduan@kotabogor.go.id> wrote:
> Terima kasih, laporan Anda sudah kami terima.
> Salam, Tim Aduan
"""


@pytest.mark.parametrize(
    "history",
    [
        "On Mon, 2 Mar 2026 at 10:15, Aduan Kota Bogor <aduan@kotabogor.go.id> wrote:\n"
        "> Laporan diterima.",
        # Gmail wraps a long attribution line
        "On Mon, Mar 2, 2026 at 10:15 AM Aduan Kota Bogor <\naduan@kotabogor.go.id> wrote:\n\n"
        "> Laporan diterima.",
        "Pada Sen, 2 Mar 2026 pukul 10.15 Aduan Kota Bogor <aduan@kotabogor.go.id> menulis:\n"
        "> Laporan diterima.",
        "Pada tanggal Sen, 2 Mar 2026 10.15, Aduan Kota Bogor <aduan@kotabogor.go.id>\n"
        "menulis:\n> Laporan diterima.",
        "-----Original Message-----\nFrom: Aduan Kota Bogor\nSent: Monday\nLaporan diterima.",
        "From: Aduan Kota Bogor <aduan@kotabogor.go.id>\nSent: Monday\nLaporan diterima.",
        "> Laporan diterima.\n> Salam",
        "-- \nBudi Santoso\nRT 03/RW 07 Tegal Gundil\n0812-3456-7890",
        "Sent from my iPhone",
        "Dikirim dari Yahoo Mail di Android",
        "Sent from my Galaxy\n\nOn Mon, 2 Mar 2026, Aduan wrote:\n> Laporan diterima.",
    ],
)
def test_history_and_signatures_are_cut(history: str) -> None:
    body = "Jalan di depan rumah saya masih rusak.\nMohon ditindaklanjuti."
    cleaned = clean_text(f"{body}\n\n{history}\n", strip_history=True)
    assert cleaned == body


def test_history_is_kept_when_not_asked_to_strip() -> None:
    cleaned = clean_text(EMAIL_WITH_HISTORY)
    assert "wrote:" in cleaned and "> Terima kasih" in cleaned


def test_quote_lines_in_between_are_dropped_and_the_reply_kept() -> None:
    text = "> Apakah sudah diangkut?\nBelum, masih numpuk.\n> Lokasi?\nTPS Pasar Anyar"
    assert strip_quoted(text) == "Belum, masih numpuk.\nTPS Pasar Anyar"


def test_a_sentence_starting_with_on_or_pada_is_not_history() -> None:
    text = (
        "Pada hari Senin banjir lagi di Jl. Pandu Raya.\n"
        "On Monday the flood came back.\nTolong segera."
    )
    assert clean_text(text, strip_history=True) == text


def test_html_email_with_gmail_quote() -> None:
    markup = (
        '<div dir="ltr">Sampah <b>numpuk</b> di TPS</div><div><br></div>'
        '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">Pada Sen, 2 Mar 2026 '
        "pukul 10.15 Aduan &lt;aduan@kotabogor.go.id&gt; menulis:<br></div>"
        '<blockquote class="gmail_quote">Laporan diterima</blockquote></div>'
    )
    assert clean_text(markup, is_html=True, strip_history=True) == "Sampah numpuk di TPS"


def test_whitespace_is_folded() -> None:
    text = "  Lampu\tjalan \u00a0 mati\r\n\r\n\r\n\r\nsejak   kemarin  \u200b\n\n\n  "
    assert clean_text(text) == "Lampu jalan mati\n\nsejak kemarin"


def test_control_characters_are_removed_and_unicode_composed() -> None:
    assert clean_text("ja\x00lan\x07 rusak\x1b") == "jalan rusak"
    assert clean_text("cafe\u0301") == "caf\u00e9"


def test_title_of() -> None:
    assert title_of("Lampu jalan mati\nsejak kemarin") == "Lampu jalan mati"
    long = "Jalan " * 30
    title = title_of(long)
    assert title.endswith("…") and len(title) <= 81
    assert title.startswith("Jalan Jalan")


def test_words_fold_case_and_accents() -> None:
    assert words("Café SEMPUR, jl.Pajajaran-Raya!") == ("cafe", "sempur", "jl", "pajajaran", "raya")


@pytest.mark.parametrize(
    "variant",
    [
        "jalan rusak di depan SDN Polisi 1",
        "JALAN RUSAK DI DEPAN SDN POLISI 1!!!",
        "Jalan  rusak,  di depan SDN-Polisi 1.",
        "  jalan\nrusak\tdi depan\n\nsdn polisi 1 ",
        "Jalan rusak... di depan (SDN Polisi 1)",
    ],
)
def test_fingerprint_ignores_case_punctuation_and_spacing(variant: str) -> None:
    assert fingerprint(variant) == fingerprint("Jalan rusak di depan SDN Polisi 1")


@pytest.mark.parametrize(
    "other",
    [
        "Jalan rusak di depan SDN Polisi 2",
        "Jalan rusak di depan SDN Polisi",
        "di depan SDN Polisi 1 jalan rusak",
        "Jalan rusak di belakang SDN Polisi 1",
        "",
    ],
)
def test_fingerprint_differs_for_different_text(other: str) -> None:
    assert fingerprint(other) != fingerprint("Jalan rusak di depan SDN Polisi 1")


def test_fingerprint_shape() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", fingerprint("apa saja"))
