"""The SMTP intake: 10,000 generated mails (headers, MIME trees, charsets, raw bytes).

What may be answered, per command (anything else fails the test):
- MAIL FROM: 250; 501 or 553 only for an address aiosmtpd cannot parse (syntax).
- RCPT TO: 250 for our address; 550 5.7.1 (relay denied) only for a foreign one.
- DATA (sent only when a recipient was accepted): 250, nothing else. The generated mails
  stay far below the size limit and the 64 KB line limit, so 552 and 500 are not
  acceptable; 451 means the queue was unavailable, and Redis is up.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import (
    FUZZ_SETTINGS,
    INPUTS_PER_ENTRY_POINT,
    Gateway,
    no_errors_logged,
    odd_text,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
BATCH = 50
CONNECTIONS = 5  # per batch; each sends BATCH / CONNECTIONS mails, well under MAIL/DATA limits
OURS = "aduan@localhost"
FOREIGN = "someone@elsewhere.example"
CHARSETS = ["utf-8", "latin-1", "cp1252", "utf-16", "iso-2022-jp", "koi8-r", "ascii"]
HEADERS = ["From", "To", "Cc", "Subject", "Message-ID", "Date", "Content-Type", "MIME-Version",
           "Content-Transfer-Encoding", "In-Reply-To", "References", "Auto-Submitted",
           "Reply-To", "Sender", "Precedence", "List-Id", "X-Mailer"]  # fmt: skip
header_value = odd_text | st.sampled_from(
    ["Budi <budi@example.org>", "=?utf-8?b?QnVkaQ==?= <b@x.id>", "=?bogus?q?x?=", "<a@b>",
     "multipart/mixed; boundary=b1", "text/html; charset=utf-16", "base64", "quoted-printable",
     "auto-replied", "Mon, 32 Foo 99999 25:61:61 +9999", "<>", ""]
)  # fmt: skip
header = st.tuples(st.sampled_from(HEADERS) | odd_text.filter(lambda s: ":" not in s), header_value)
CONTENT_TYPES = ["text/plain", "text/html", "image/png", "application/pdf",
                 "message/rfc822", "multipart/alternative", "x/y", ""]  # fmt: skip
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "junk"]
part = st.tuples(
    st.sampled_from(CONTENT_TYPES),
    st.sampled_from(CHARSETS),
    st.sampled_from(ENCODINGS),
    odd_text | st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.none() | odd_text,  # filename
)


def encode(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset, errors="replace")
    except LookupError:
        return text.encode("utf-8")


@st.composite
def mail(draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    lines = [encode(f"{name}: {value}", charset) for name, value in draw(st.lists(header))]
    shape = draw(st.sampled_from(["text", "multipart", "raw"]))
    if shape == "raw":
        return b"\r\n".join(lines) + b"\r\n" + draw(st.binary(max_size=500))
    if shape == "text":
        return b"\r\n".join(lines) + b"\r\n\r\n" + encode(draw(odd_text), charset)
    boundary = draw(st.sampled_from(["b1", "==x==", "", "a b", "\u00e9"]))
    lines.append(encode(f'Content-Type: multipart/mixed; boundary="{boundary}"', "utf-8"))
    body = [b"preamble"]
    for content_type, part_charset, cte, payload, filename in draw(st.lists(part, max_size=4)):
        head = f"Content-Type: {content_type}; charset={part_charset}"
        if filename is not None:
            head += f'; name="{filename}"'
        body.append(encode(f"--{boundary}\r\n{head}\r\nContent-Transfer-Encoding: {cte}", "utf-8"))
        body.append(b"\r\n" + encode(payload, part_charset))
    if draw(st.booleans()):
        body.append(encode(f"--{boundary}--", "utf-8"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + b"\r\n".join(body)


envelope_from = st.sampled_from(["", "warga@example.org", "a@b", "x@[127.0.0.1]", "@", "a.@b"])
recipients = st.lists(st.sampled_from([OURS, FOREIGN]), min_size=1, max_size=3)
attempt = st.tuples(envelope_from, recipients, mail())

Answer = tuple[str, int]  # (command, code)


def acceptable(command: str, code: int, rcpt: str = OURS) -> bool:
    if command == "MAIL":
        return code in (250, 501, 553)
    if command == "RCPT":
        return code == 250 if rcpt == OURS else code == 550
    return code == 250


async def deliver(gw: Gateway, attempts: list[tuple[str, list[str], bytes]]) -> list[str]:
    """Send the mails over one connection; returns what was not acceptable."""
    problems: list[str] = []
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gw.smtp.port, start_tls=False)
    await client.connect()
    try:
        await client.ehlo()
        for sender, rcpts, message in attempts:
            try:
                await client.mail(sender)
            except aiosmtplib.SMTPResponseException as exc:
                if not acceptable("MAIL", exc.code):
                    problems.append(f"MAIL {sender!r}: {exc.code} {exc.message}")
                await client.rset()
                continue
            accepted = 0
            for rcpt in rcpts:
                try:
                    await client.rcpt(rcpt)
                    accepted += 1
                    code = 250
                except aiosmtplib.SMTPResponseException as exc:
                    code = exc.code
                if not acceptable("RCPT", code, rcpt):
                    problems.append(f"RCPT {rcpt}: {code}")
            if not accepted:
                await client.rset()
                continue
            try:
                await client.data(message)
            except aiosmtplib.SMTPResponseException as exc:
                problems.append(f"DATA: {exc.code} {exc.message} for {message[:300]!r}")
                await client.rset()
    finally:
        try:
            await client.quit()
        except aiosmtplib.SMTPException:
            client.close()
    return problems


def test_the_smtp_intake_takes_every_generated_mail(gw: Gateway) -> None:
    @settings(FUZZ_SETTINGS, max_examples=INPUTS_PER_ENTRY_POINT // BATCH + 5)
    @given(st.lists(attempt, min_size=BATCH, max_size=BATCH))
    def batch(attempts: list[tuple[str, list[str], bytes]]) -> None:
        share = len(attempts) // CONNECTIONS
        chunks = [attempts[i * share : (i + 1) * share] for i in range(CONNECTIONS)]

        async def all_connections() -> list[list[str]]:
            return list(await asyncio.gather(*(deliver(gw, c) for c in chunks)))

        problems = [p for found in gw.run(all_connections()) for p in found]
        gw.count("smtp", len(attempts))
        assert not problems, problems[:5]

    batch()
    assert gw.sent["smtp"] >= INPUTS_PER_ENTRY_POINT
    no_errors_logged(gw)
