"""Text cleaning: HTML reduced to text, quoted history and signatures cut, whitespace folded."""

from __future__ import annotations

import functools
import hashlib
import html
import re
import unicodedata

import nh3

_BLOCK_TAGS = re.compile(r"(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\s*/?\s*>")
_HAS_TAG = re.compile(r"<[a-zA-Z/!][^>]*>")
_QUOTE_HEADERS = (
    re.compile(r"^\s*On .{3,200} wrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Pada .{3,200} menulis:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*(Original Message|Pesan Asli|Forwarded message)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*From:\s.+$"),
    re.compile(r"^\s*Dari:\s.+$"),
)
_SIGNATURE_MARKERS = (
    re.compile(r"^-- ?$"),
    re.compile(r"^\s*(Sent from my|Dikirim dari)\s.+$", re.IGNORECASE),
)
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def html_to_text(markup: str) -> str:
    """Reduce HTML to the text a person would read; no markup survives."""
    with_breaks = _BLOCK_TAGS.sub("\n", markup)
    stripped = nh3.clean(with_breaks, tags=set(), strip_comments=True)
    return html.unescape(stripped)


def strip_quoted(text: str) -> str:
    """Cut reply history and signatures: what follows is not the new complaint."""
    kept: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            continue
        # Mail clients wrap a long "On …, Name <address> wrote:" over two lines.
        wrapped = f"{line} {lines[index + 1]}" if index + 1 < len(lines) else line
        if kept and (
            any(p.match(line) for p in _QUOTE_HEADERS)
            or any(p.match(wrapped) for p in _QUOTE_HEADERS[:2])
        ):
            break
        if any(p.match(line) for p in _SIGNATURE_MARKERS):
            break
        kept.append(line)
    return "\n".join(kept)


# The ASCII characters of Unicode's category C (control), but for tab and newline.
_ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str, *, is_html: bool | None = None, strip_history: bool = False) -> str:
    """`is_html` None: decide by looking. A mail says what its body is, and a plain one
    often holds `<https://…>` or `<name@host>` that must not be taken for tags."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if is_html or (is_html is None and _HAS_TAG.search(text)):
        text = html_to_text(text)
    if strip_history:
        text = strip_quoted(text)
    if text.isascii():  # its only control characters are these: one pass in C
        text = _ASCII_CONTROLS.sub("", text)
    else:
        text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def title_of(text: str, limit: int = 80) -> str:
    first = text.strip().split("\n", 1)[0].strip()
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0]
    return (cut or first[:limit]) + "…"


@functools.lru_cache(maxsize=8)
def words(text: str) -> tuple[str, ...]:
    """Folded words, without accents. Remembered for the last few texts: normalising one
    message asks for the words of the same text four times (topic, confidential marker,
    language, fingerprint)."""
    folded = text.casefold()
    if not folded.isascii():  # ASCII has no accents to take off: most messages are
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return tuple(_WORDS.findall(folded))


def fingerprint(text: str) -> str:
    """Same words in the same order, whatever the case, spacing or punctuation."""
    return hashlib.sha256(" ".join(words(text)).encode("utf-8")).hexdigest()[:32]
