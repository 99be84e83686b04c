"""Email: one SMTP transaction (envelope and message bytes) into one `InboundMessage`.

Mail comes from every kind of client and every kind of broken software, so nothing here
raises: each header and each MIME part is read on its own, and what cannot be read is
skipped and noted. A mail that cannot become a complaint (nothing readable, no sender we
could answer, a parser failure) is still kept as an "unparsed intake" carrying the raw
bytes; a delivery report is kept the same way, as a "report". `raw["intake"]` marks both.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, getaddresses
from typing import Any, ClassVar

from channels.base import Attachment, InboundMessage, RawRequest
from channels.web import sniff_image

MAX_TEXT_CHARS = 100_000
MAX_SUBJECT_CHARS = 400
MAX_NAME_CHARS = 200
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_PARTS = 200
MAX_DEPTH = 12
MAX_REFERENCES = 30
MAX_HEADERS_CHARS = 16_000
MAX_NOTES = 20
PREVIEW_CHARS = 5_000
# The normalizer needs a syntactically valid address; an intake without a usable sender
# never gets a reporter row, so nothing is ever sent to this one.
UNKNOWN_SENDER = "unknown@unparsed.invalid"

# The envelope, as the SMTP server hands it to the adapter.
MAIL_FROM_HEADER = "Mail-From"
RCPT_TO_HEADER = "Rcpt-To"

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")
_MSG_ID = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]{1,250})>")  # visible ASCII but < >
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_GUESS_BOUNDARY = re.compile(r"^--([0-9A-Za-z'()+_,./:=?-]{1,70})[ \t]*\r?\n(?=[\w-]+:)", re.M)
_RAW_TYPE = re.compile(r"^\s*([\w.+-]+/[\w.+-]+)")
_RAW_CHARSET = re.compile(r"charset\s*=\s*\"?([\w.:+-]+)", re.I)
_RAW_DISPOSITION = re.compile(r"^\s*(inline|attachment)\b", re.I)

_CHARSET_ALIASES = {
    # Mail labelled gb2312 is very often GBK; gb18030 is a superset of both.
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "cp936": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "x-unknown": "",
    "unknown-8bit": "",
}
# Labels that old clients put on anything; UTF-8 bytes under them are far more likely
# than Latin text that happens to be valid UTF-8.
_WESTERN = {"ascii", "latin_1", "cp1252", "iso8859_15"}

NO_AUTOREPLY_PRECEDENCE = {"bulk", "junk", "list"}
_NOREPLY_LOCALPARTS = {"mailer-daemon", "noreply", "no-reply", "donotreply", "do-not-reply"}


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes under any label: unknown or wrong labels decode with replacement."""
    label = (charset or "").strip().strip("\"'").lower().split("*", 1)[0]
    label = _CHARSET_ALIASES.get(label, label)
    codec: str | None = None
    if label:
        try:
            codec = codecs.lookup(label).name
        except LookupError:
            codec = None
    attempts: list[tuple[str, str]] = []
    if codec is None or codec in _WESTERN:
        attempts.append(("utf-8", "strict"))
    if codec is not None:
        attempts.append((codec, "strict"))
    attempts += [("utf-8", "strict"), (codec or "cp1252", "replace"), ("latin-1", "replace")]
    for encoding, errors in dict.fromkeys(attempts):
        try:
            return data.decode(encoding, errors)
        except (UnicodeError, LookupError, ValueError, TypeError):
            continue
    return data.decode("latin-1")


def _printable(text: str) -> str:
    return _CONTROL.sub("", text)


def _from_8bit(value: str) -> str:
    """Headers with raw 8-bit bytes come out of the parser as surrogate escapes."""
    if not _has_surrogates(value):
        return value
    try:
        return decode_bytes(value.encode("utf-8", "surrogateescape"), "utf-8")
    except UnicodeEncodeError:
        return _CONTROL.sub("\ufffd", value)


def _unfold(value: str) -> str:
    return _FOLD.sub("", value).replace("\r", "").replace("\n", " ")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words in any charset, decoded leniently."""
    value = _from_8bit(value)
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except Exception:
        return value
    out: list[str] = []
    for data, charset in chunks:
        if isinstance(data, str):
            out.append(data)
        elif charset is None:
            try:
                out.append(data.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                out.append(data.decode("latin-1"))
        else:
            out.append(decode_bytes(data, charset))
    return "".join(out)


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _safe_items(message: Message) -> list[tuple[str, str]]:
    try:
        return [(str(k), str(v)) for k, v in message.raw_items()]
    except Exception:
        return []


def _raw_values(message: Message, name: str) -> list[str]:
    lowered = name.lower()
    return [v for k, v in _safe_items(message) if k.lower() == lowered]


def _raw_header(message: Message, name: str) -> str | None:
    values = _raw_values(message, name)
    return _unfold(values[0]) if values else None


def header_text(message: Message, name: str) -> str | None:
    """A header as text, whatever it holds; never raises (see CPython issue 94306)."""
    raw = _raw_header(message, name)
    if raw is None:
        return None
    text: str | None
    try:
        value = message.get(name)
        text = None if value is None else str(value)
    except Exception:
        text = None
    if text is None or _has_surrogates(text) or "\ufffd" in text:
        text = decode_words(raw)
    return " ".join(_printable(text).split())


def header_addresses(message: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header; never raises."""
    try:
        addresses: Any = getattr(message.get(name), "addresses", ())
        pairs = [(str(a.display_name), str(a.addr_spec)) for a in addresses]
    except Exception:
        pairs = []
    if pairs and not any(_has_surrogates(n + a) or "\ufffd" in n for n, a in pairs):
        return pairs
    raw = _raw_header(message, name)
    if raw is None:
        return []
    try:
        pairs = getaddresses([_from_8bit(raw)])
    except Exception:
        return []
    return [(decode_words(n), a) for n, a in pairs]


def message_ids(value: str | None) -> list[str]:
    return [f"<{m}>" for m in _MSG_ID.findall(value or "")]


def is_address(value: str) -> bool:
    return len(value) <= 254 and bool(_EMAIL.match(value)) and not _has_surrogates(value)


def _local_part(address: str) -> str:
    return address.rpartition("@")[0].lower()


def _content_type(part: Message) -> str:
    try:
        return str(part.get_content_type()).lower()
    except Exception:
        match = _RAW_TYPE.match(_raw_header(part, "content-type") or "")
        return match.group(1).lower() if match else "text/plain"


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
        return None if charset is None else str(charset)
    except Exception:
        match = _RAW_CHARSET.search(_raw_header(part, "content-type") or "")
        return match.group(1) if match else None


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
        return None if value is None else str(value)
    except Exception:
        match = _RAW_DISPOSITION.match(_raw_header(part, "content-disposition") or "")
        return match.group(1).lower() if match else None


def _filename(part: Message) -> str | None:
    name: Any = None
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            name = part.get_param(param, header=header)
        except Exception:
            name = None
        if name:
            break
    if isinstance(name, tuple):  # RFC 2231: (charset, language, %-decoded value)
        try:
            name = collapse_rfc2231_value(name)
        except Exception:
            name = None
    if not isinstance(name, str) or not name.strip():
        return None
    name = decode_words(name) if "=?" in name else _from_8bit(name)
    name = _printable(name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or None


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    try:
        payload = part.get_payload()
    except Exception:
        return b""
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape") if payload else b""
    return b""


def _limit(notes: list[dict[str, Any]], note: dict[str, Any]) -> None:
    if len(notes) < MAX_NOTES:
        notes.append(note)


@dataclass
class _Body:
    """What a walk over the MIME tree found."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    parts: int = 0
    hashes: set[str] = field(default_factory=set)

    def walk(self, part: Message, depth: int = 0) -> None:
        if self.parts >= MAX_PARTS or depth > MAX_DEPTH:
            if "too many or too deeply nested parts" not in self.problems:
                self.problems.append("too many or too deeply nested parts")
            return
        self.parts += 1
        ctype = _content_type(part)
        if ctype.startswith("message/"):
            self._skip(part, ctype, "embedded message")
            return
        if part.is_multipart():
            try:
                children = list(part.get_payload())
            except Exception:
                children = []
            for child in children:
                if isinstance(child, Message):
                    self.walk(child, depth + 1)
            if not children:
                self._recover(part, getattr(part, "preamble", None) or "", depth)
            return
        if ctype.startswith("multipart/"):
            # No boundary, or the wrong one: the parser left the parts as text.
            payload = _payload(part).decode("utf-8", "surrogateescape")
            if not self._recover(part, payload, depth):
                self._text(part, "text/plain")
            return
        disposition = _disposition(part)
        if ctype in ("text/plain", "text/html") and disposition != "attachment":
            self._text(part, ctype)
            return
        if ctype.startswith("text/") and disposition != "attachment" and not _filename(part):
            self._skip(part, ctype, "text type not read")
            return
        self._attachment(part, ctype)

    def _recover(self, part: Message, body: str, depth: int) -> bool:
        match = _GUESS_BOUNDARY.search(body)
        if match is None:
            return False
        self.problems.append("multipart boundary missing or wrong; guessed")
        head = f'Content-Type: multipart/mixed; boundary="{match.group(1)}"\r\n\r\n'
        try:
            rebuilt = BytesParser(policy=policy.default).parsebytes(
                head.encode() + body.encode("utf-8", "surrogateescape")
            )
        except Exception:
            return False
        if not rebuilt.is_multipart():
            return False
        self.walk(rebuilt, depth + 1)
        return True

    def _text(self, part: Message, ctype: str) -> None:
        data = _payload(part)[: MAX_TEXT_CHARS * 4]
        text = decode_bytes(data, _charset(part))
        (self.html if ctype == "text/html" else self.plain).append(text)

    def _skip(self, part: Message, ctype: str, reason: str, size: int | None = None) -> None:
        _limit(
            self.skipped,
            {
                "content_type": ctype[:100],
                "filename": _filename(part),
                "size": size,
                "reason": reason,
            },
        )

    def _attachment(self, part: Message, declared: str) -> None:
        data = _payload(part)
        size = len(data)
        if not data:
            self._skip(part, declared, "empty", size)
            return
        if size > MAX_ATTACHMENT_BYTES:
            self._skip(part, declared, "too large", size)
            return
        kind = sniff_image(data) or ("application/pdf" if data.startswith(b"%PDF-") else None)
        if kind is None:
            self._skip(part, declared, "type not accepted", size)
            return
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.hashes:
            return  # the same file inline and attached, as some clients send it
        if len(self.attachments) >= MAX_ATTACHMENTS:
            self._skip(part, declared, "too many attachments", size)
            return
        self.hashes.add(digest)
        self.attachments.append(Attachment.from_bytes(data, kind, _filename(part)))

    def text(self) -> tuple[str, str]:
        plain = [t for t in self.plain if t.strip()]
        if plain or not any(t.strip() for t in self.html):
            return "\n\n".join(plain)[:MAX_TEXT_CHARS], "text/plain"
        return "\n\n".join(t for t in self.html if t.strip())[:MAX_TEXT_CHARS], "text/html"


def no_autoreply_reason(message: Message, mail_from: str, sender: str | None) -> str | None:
    """Why RFC 3834 (and common sense about loops) forbids answering this mail, if it does."""
    auto = (header_text(message, "auto-submitted") or "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return "auto-submitted"
    if mail_from in ("", "<>"):
        return "null return path"
    if any(_local_part(a) in _NOREPLY_LOCALPARTS for a in (mail_from, sender or "") if a):
        return "sent by a mailer daemon or a no-reply address"
    names = {k.lower() for k, _ in _safe_items(message)}
    if any(n.startswith("list-") for n in names):
        return "mailing list"
    precedence = (header_text(message, "precedence") or "").strip().lower()
    if precedence in NO_AUTOREPLY_PRECEDENCE:
        return f"precedence {precedence}"
    # Exchange's list of answers the sender does not want (DR, NDR, RN, NRN, OOF, AutoReply).
    suppress = (header_text(message, "x-auto-response-suppress") or "").lower()
    if {t.strip() for t in suppress.split(",")} & {"all", "autoreply"}:
        return "auto-response suppressed"
    if names & {"x-autoreply", "x-autorespond", "x-autogenerated"}:
        return "auto-submitted"
    if _content_type(message) == "multipart/report":
        return "delivery report"
    return None


def _envelope(mail_from: str, rcpt_tos: Sequence[str]) -> tuple[str, list[str]]:
    # aiosmtpd hands over envelope bytes that are not UTF-8 as surrogate escapes.
    return _printable(_from_8bit(mail_from))[:320], [
        _printable(_from_8bit(r))[:320] for r in rcpt_tos
    ]


def smtp_request(
    raw: bytes, mail_from: str | None, rcpt_tos: Sequence[str], remote: str | None = None
) -> RawRequest:
    """The SMTP envelope and message in the shape every adapter reads."""
    return RawRequest(
        method="DATA",
        url="smtp:",
        headers={MAIL_FROM_HEADER: mail_from or "", RCPT_TO_HEADER: "\n".join(rcpt_tos)},
        body=raw,
        remote=remote,
    )


def raw_key(raw: bytes) -> str:
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def unparsed(raw: bytes, mail_from: str, rcpt_tos: Sequence[str], reason: str) -> InboundMessage:
    """A mail we keep as it came, for operators to read; it gets no case and no reply."""
    mail_from, rcpt_tos = _envelope(mail_from, rcpt_tos)
    preview = _printable(raw[: PREVIEW_CHARS * 2].decode("utf-8", "replace"))[:PREVIEW_CHARS]
    return InboundMessage(
        channel="email",
        provider="smtp",
        provider_message_id=raw_key(raw),
        sender=mail_from if is_address(mail_from) else UNKNOWN_SENDER,
        text=preview,
        recipient=rcpt_tos[0][:320] if rcpt_tos else None,
        raw={
            "intake": "unparsed",
            "reason": reason,
            "mail_from": mail_from,
            "rcpt_to": list(rcpt_tos),
            "size": len(raw),
            "raw_b64": base64.b64encode(raw).decode("ascii"),
        },
    )


def _headers_text(message: Message) -> str:
    lines = [f"{k}: {_printable(_from_8bit(_unfold(v)))}" for k, v in _safe_items(message)]
    return "\n".join(lines)[:MAX_HEADERS_CHARS]


def parse_mail(raw: bytes, mail_from: str, rcpt_tos: Sequence[str]) -> InboundMessage:
    """One mail into one message; never raises."""
    mail_from, rcpt_tos = _envelope(mail_from, rcpt_tos)
    try:
        return _parse(raw, mail_from, rcpt_tos)
    except Exception as exc:  # RecursionError, MemoryError on a bomb, a parser bug …
        return unparsed(raw, mail_from, rcpt_tos, f"parser failed ({type(exc).__name__})")


def _keep_reason(
    message: Message,
    is_report: bool,
    sender: str | None,
    text: str,
    subject: str | None,
    body: _Body,
) -> str | None:
    """Why this mail is kept as it came instead of becoming a complaint, if it is."""
    if is_report:
        return "delivery report"
    if not _safe_items(message):
        return "not an email message: no headers"
    if sender is None:
        return "no sender address"
    if not (text.strip() or subject or body.attachments):
        return "nothing readable"
    return None


def _parse(raw: bytes, mail_from: str, rcpt_tos: Sequence[str]) -> InboundMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    body = _Body()
    body.walk(message)
    text, content_type = body.text()

    sender, name = None, None
    for display, address in header_addresses(message, "from"):
        address = address.strip()
        if is_address(address):
            sender, name = address, _printable(display).strip()[:MAX_NAME_CHARS] or None
            break
    if sender is None and is_address(mail_from):
        sender = mail_from
    subject = header_text(message, "subject")
    subject = subject[:MAX_SUBJECT_CHARS] if subject else None
    ids = message_ids(_raw_header(message, "message-id"))
    message_id = ids[0] if ids else None
    in_reply_to = message_ids(" ".join(_raw_values(message, "in-reply-to")))
    references = message_ids(" ".join(_raw_values(message, "references")))
    reply_to = list(dict.fromkeys([*in_reply_to, *reversed(references)]))[:MAX_REFERENCES]

    reason = no_autoreply_reason(message, mail_from, sender)
    is_report = _content_type(message) == "multipart/report" or (
        sender is not None and _local_part(sender) == "mailer-daemon"
    )
    try:
        defects = sorted({type(d).__name__ for d in message.defects})
    except Exception:
        defects = []
    details: dict[str, Any] = {
        "message_id": message_id,
        "from": sender,
        "mail_from": mail_from,
        "rcpt_to": list(rcpt_tos),
        "date": header_text(message, "date"),
        "content_type": content_type,
        "in_reply_to": in_reply_to[:MAX_REFERENCES],
        "no_autoreply": reason,
        "headers": _headers_text(message),
    }
    if defects or body.problems:
        details["defects"] = (defects + body.problems)[:MAX_NOTES]
    if body.skipped:
        details["skipped"] = body.skipped
    keep_reason = _keep_reason(message, is_report, sender, text, subject, body)
    if keep_reason is not None:
        details["intake"] = "report" if is_report else "unparsed"
        details["reason"] = keep_reason
        details["size"] = len(raw)
        details["raw_b64"] = base64.b64encode(raw).decode("ascii")
    provider_message_id = message_id[1:-1] if message_id else raw_key(raw)
    return InboundMessage(
        channel="email",
        provider="smtp",
        provider_message_id=provider_message_id,
        sender=sender or UNKNOWN_SENDER,
        sender_name=name,
        text=text,
        recipient=rcpt_tos[0][:320] if rcpt_tos else None,
        subject=subject,
        attachments=tuple(body.attachments),
        reply_to=tuple(reply_to),
        raw=details,
    )


class EmailAdapter:
    """An SMTP transaction: the envelope in the request's headers, the mail as its body."""

    name: ClassVar[str] = "email"

    def parse(self, request: RawRequest) -> list[InboundMessage]:
        mail_from = request.header(MAIL_FROM_HEADER) or ""
        rcpt_tos = [r for r in (request.header(RCPT_TO_HEADER) or "").split("\n") if r]
        return [parse_mail(request.body, mail_from, rcpt_tos)]
