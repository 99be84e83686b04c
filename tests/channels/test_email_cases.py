"""The email channel, table-driven: each recorded mail under testdata/email → what it becomes.

A case names a file and what the adapter and the normalizer make of it: the complaint's
clean text, sender, subject, attachments and reply headers, or that it is kept as an
"unparsed" intake or a delivery "report". The same table drives tests/test_email.py,
which sends every file to the running SMTP server.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from channels.base import InboundMessage
from channels.email import EmailAdapter, smtp_request
from config.data import load_taxonomy
from normalizer import Complaint, Rules, normalize

TESTDATA = Path(__file__).parent / "testdata" / "email"
RULES = Rules(load_taxonomy())
RECIPIENTS = ("aduan@localhost",)


def wire(data: bytes) -> bytes:
    """The bytes as an SMTP client sends them: CRLF line ends, a final CRLF."""
    data = re.sub(rb"\r\n|\n|\r", b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


@dataclass(frozen=True)
class EmailCase:
    label: str
    file: str
    mail_from: str = "pengirim@example.org"  # the SMTP envelope sender; "" is MAIL FROM:<>
    kind: str = "complaint"  # or "unparsed" / "report": kept, but not a case
    text: str | None = None  # the clean complaint text, exactly
    contains: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    sender: str | None = None
    name: str | None = None
    subject: str | None = None
    attachments: tuple[tuple[str, str | None], ...] = ()  # (content type, filename)
    skipped: tuple[str, ...] = ()  # why parts were not kept
    no_autoreply: str | None = None
    reply_to: tuple[str, ...] = ()
    reason: str | None = None  # of an unparsed intake

    @property
    def malformed(self) -> bool:
        return self.file.startswith("malformed-")

    def raw(self) -> bytes:
        return wire((TESTDATA / self.file).read_bytes())

    def parse(self) -> InboundMessage:
        request = smtp_request(self.raw(), self.mail_from, RECIPIENTS)
        messages = EmailAdapter().parse(request)
        assert len(messages) == 1
        return messages[0]


BUDI = "budi.santoso@example.org"

CASES = [
    # What residents send.
    EmailCase(
        "plain text, signature cut",
        "plain-id.eml",
        text="Selamat pagi,\n\nJalan berlubang besar di Jl. Pajajaran depan Tugu Kujang, "
        "sudah dua minggu.\nSudah ada motor yang jatuh.",
        absent=("Tegal Gundil",),
        sender=BUDI,
        name="Budi Santoso",
        subject="Jalan berlubang di Jl. Pajajaran",
    ),
    EmailCase(
        "HTML only, reduced to safe text",
        "html-only.eml",
        text="Sampah menumpuk di TPS Pasar Anyar & baunya menyengat.\nFoto:\nMohon diangkut.",
        absent=("alert", "color: red", "<"),
        subject="Sampah menumpuk",
    ),
    EmailCase(
        "multipart with a photo; an executable is not kept",
        "multipart-photo.eml",
        text="Got mampet di Jl. Malabar, air meluap ke jalan tiap hujan.",
        attachments=(("image/png", "got.png"),),
        skipped=("type not accepted",),
    ),
    EmailCase(
        "HTML with an inline image",
        "related-inline-image.eml",
        text="Lampu jalan mati di gang Mawar.",
        attachments=(("image/png", None),),
    ),
    EmailCase(
        "Indonesian in quoted-printable",
        "quoted-printable-id.eml",
        text="Saluran air di Jl. Sholeh Iskandar mampet sejak Senin – air meluap sampai ke rumah "
        "warga, kerugian sekitar Rp 1.500.000. Mohon segera ditangani, terima kasih.",
    ),
    EmailCase(
        "Indonesian in base64",
        "base64-id.eml",
        text="Pohon tumbang menutup Jl. Juanda dekat Kebun Raya – lalu lintas macet total.",
    ),
    EmailCase(
        "encoded-word subject and sender name",
        "encoded-subject.eml",
        sender="sri@example.org",
        name="Sri Rahayú",
        subject="Lampu jalan mati – Jl. Pajajaran café",
        text="Lampu jalan mati sejak tiga hari.",
    ),
    EmailCase(
        "ISO-8859-1",
        "iso-8859-1.eml",
        text="Trotoar di depan café Señor rusak parah.",
    ),
    EmailCase(
        "Gmail reply: quoted history cut, thread headers kept",
        "gmail-reply.eml",
        text="Sampai hari ini jalannya masih rusak.",
        absent=("BGR-2026-000001-5",),
        reply_to=("<aduan.1.0000@localhost>", "<first.1@example.org>"),
    ),
    EmailCase(
        "Outlook HTML reply: quoted history cut",
        "outlook-reply-html.eml",
        text="Air PDAM tidak mengalir sejak kemarin pagi.",
    ),
    # Mail that must never be answered (RFC 3834), but is kept.
    EmailCase(
        "out-of-office auto-reply",
        "auto-reply-out-of-office.eml",
        text="Saya sedang cuti sampai 10 Maret.",
        no_autoreply="auto-submitted",
    ),
    EmailCase(
        "mailing list",
        "mailing-list.eml",
        text="Kerja bakti Minggu pagi di RW 07.",
        no_autoreply="mailing list",
    ),
    EmailCase(
        "delivery report from MAILER-DAEMON, null return path",
        "delivery-report.eml",
        mail_from="",
        kind="report",
        sender="MAILER-DAEMON@mx.example.org",
        no_autoreply="auto-submitted",
        reason="delivery report",
    ),
    # The malformed corpus: each one kept, none crashing.
    EmailCase(
        "Message-ID that makes the stdlib raise IndexError",
        "malformed-message-id-brackets.eml",
        text="Parkir liar di depan Pasar Bogor setiap sore.",
    ),
    EmailCase(
        "unknown charset",
        "malformed-unknown-charset.eml",
        text="Banjir setinggi lutut di Jl. Ahmad Yani – warga mengungsi.",
    ),
    EmailCase(
        "gb2312 label on GBK text, body and headers",
        "malformed-gb2312-is-gbk.eml",
        text="路灯坏了，镕瑢堃。Jl. Suryakencana.",
        sender="wang@example.org",
        name="王堃",
        subject="路灯坏了 堃",
    ),
    EmailCase(
        "us-ascii label on UTF-8 text",
        "malformed-mislabelled-ascii.eml",
        text="Trotoar di depan café Botani rusak – berbahaya.",
    ),
    EmailCase(
        "base64 with junk and bad padding",
        "malformed-broken-base64.eml",
        contains=("Kabel listrik menjuntai di Jl. Pandu Raya.",),
    ),
    EmailCase(
        "multipart without a boundary parameter",
        "malformed-missing-boundary.eml",
        text="Jukir minta Rp 20.000 di Jl. Surya Kencana.",
    ),
    EmailCase(
        "multipart whose parts use another boundary",
        "malformed-wrong-boundary.eml",
        text="Air PDAM keruh dan berbau di Perumahan Bantarjati.",
    ),
    EmailCase(
        "truncated multipart, attachment cut off",
        "malformed-truncated-multipart.eml",
        text="Jembatan di Jl. Otista retak.",
        attachments=(("image/png", "retak.png"),),
    ),
    EmailCase(
        "binary garbage",
        "malformed-binary-garbage.eml",
        kind="unparsed",
        reason="not an email message: no headers",
    ),
    EmailCase(
        "no From header and a null return path",
        "malformed-no-from.eml",
        mail_from="",
        kind="unparsed",
        reason="no sender address",
    ),
    EmailCase(
        "From without an address: the envelope sender is the reporter",
        "malformed-from-without-address.eml",
        sender="pengirim@example.org",
        text="Tiang listrik miring di Jl. Kapten Muslihat.",
    ),
    EmailCase(
        "raw 8-bit UTF-8 in headers",
        "malformed-8bit-headers.eml",
        sender="dede@example.org",
        name="Dédé Supriyadi",
        subject="Jalan rusak – Ciomas",
        text="Jalan rusak di Ciomas.",
    ),
    EmailCase(
        "broken encoded words",
        "malformed-bad-encoded-words.eml",
        sender="rusak@example.org",
        contains=("Lampu mati di Jl. Merdeka.",),
    ),
    EmailCase(
        "forty nested multiparts",
        "malformed-deep-nesting.eml",
        text="Selokan di Jl. Pandu Raya tersumbat.",
    ),
    EmailCase(
        "garbage lines in the header block",
        "malformed-header-garbage.eml",
        sender="warga@example.org",
        contains=("Kebisingan dari pabrik di malam hari.",),
    ),
    EmailCase(
        "NUL bytes in subject, body and file name",
        "malformed-nul-bytes.eml",
        sender="nul@example.org",
        text="Genangan air di Jl. Veteran.",
        subject="Genanganair",
        attachments=(("image/png", "foto.png"),),
    ),
    EmailCase(
        "nonsense Content-Type and transfer encoding",
        "malformed-bad-content-type.eml",
        text="Pohon besar rawan tumbang di Jl. Jalak Harupat.",
    ),
    EmailCase(
        "broken RFC 2231 file name with a path in it",
        "malformed-rfc2231-filename.eml",
        text="Genangan di terowongan Jl. Baru.",
        attachments=(("image/png", "passwd"),),
    ),
    EmailCase(
        "bad quoted-printable escapes",
        "malformed-bad-quoted-printable.eml",
        contains=("Jalan amblas di Jl. Raya Tajur", "sudah seminggu."),
    ),
    EmailCase(
        "attachments whose declared types lie",
        "malformed-attachments-lie.eml",
        text="Terlampir surat dari kelurahan.",
        attachments=(("application/pdf", "surat.bin"),),
        skipped=("type not accepted",),
    ),
    EmailCase(
        "no subject, no body",
        "malformed-empty.eml",
        kind="unparsed",
        reason="nothing readable",
    ),
    EmailCase(
        "one 18,000-character line",
        "malformed-long-line.eml",
        contains=("Sampah berserakan di sepanjang jalan " * 3,),
    ),
    EmailCase(
        "500 References and a garbage In-Reply-To",
        "malformed-references-flood.eml",
        text="Saya sudah lapor minggu lalu.",
        reply_to=("<[x]@y>", "<r499@example.org>", "<r498@example.org>"),
    ),
    EmailCase(
        "duplicate From, Subject and Content-Type",
        "malformed-duplicate-headers.eml",
        sender="satu@example.org",
        subject="Pertama",
        text="Lubang di Jl. Sudirman.",
    ),
    EmailCase(
        "message/rfc822 part that is not a message",
        "malformed-broken-embedded-message.eml",
        text="Saya teruskan aduan tetangga saya.",
        skipped=("embedded message",),
    ),
    EmailCase(
        "unparseable Date, empty group and junk addresses",
        "malformed-bad-date-and-addresses.eml",
        sender="warga.rt05@example.org",
        name="Warga, RT 05",
        text="Mobil rusak ditinggal di bahu jalan sejak sebulan.",
    ),
]


def _complaint(case: EmailCase, message: InboundMessage) -> Complaint:
    complaint = normalize(message, RULES)
    assert complaint.channel == "email" and complaint.provider == "smtp"
    return complaint


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_email_case(case: EmailCase) -> None:
    message = case.parse()
    complaint = _complaint(case, message)  # the normalizer takes every one of them
    assert message.raw.get("intake", "complaint") == case.kind
    if case.kind != "complaint":
        assert message.raw["reason"] == case.reason
        assert message.raw["raw_b64"]  # kept as it came
        return
    assert "intake" not in message.raw
    if case.text is not None:
        assert complaint.text == case.text
    for part in case.contains:
        assert part in complaint.text
    for part in case.absent:
        assert part not in complaint.text
    assert message.sender == (case.sender or BUDI)
    if case.name is not None:
        assert message.sender_name == case.name
    if case.subject is not None:
        assert message.subject == case.subject
    assert [(a.content_type, a.filename) for a in message.attachments] == list(case.attachments)
    for attachment in message.attachments:
        data = attachment.data()
        assert data is not None and attachment.size == len(data)
        assert attachment.sha256 is not None and len(attachment.sha256) == 64
    assert [s["reason"] for s in message.raw.get("skipped", [])] == list(case.skipped)
    assert message.raw["no_autoreply"] == case.no_autoreply
    assert message.reply_to[: len(case.reply_to)] == case.reply_to


def test_every_recorded_mail_has_a_case_and_the_malformed_corpus_is_large() -> None:
    files = sorted(p.name for p in TESTDATA.iterdir())
    assert sorted(c.file for c in CASES) == files
    assert sum(c.malformed for c in CASES) >= 15


def test_an_unparsed_intake_keeps_the_exact_bytes() -> None:
    import base64

    case = next(c for c in CASES if c.file == "malformed-binary-garbage.eml")
    assert base64.b64decode(case.parse().raw["raw_b64"]) == case.raw()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_cut_or_damaged_copies_never_crash(case: EmailCase) -> None:
    """Every recorded mail, truncated anywhere and with bytes flipped: always one message."""
    raw = case.raw()
    rng = random.Random(case.file)
    variants = [raw[: rng.randrange(len(raw) + 1)] for _ in range(6)]
    for _ in range(6):
        damaged = bytearray(raw)
        for _ in range(1 + len(raw) // 200):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(bytes(damaged))
    for variant in variants:
        request = smtp_request(variant, case.mail_from, RECIPIENTS)
        (message,) = EmailAdapter().parse(request)
        if message.raw.get("intake") is None:
            normalize(message, RULES)
