"""Email, end to end: real mail over SMTP into `aduan serve`, a real worker, and the replies
caught by a real relay on loopback (see tests/email_fixtures.py)."""

from __future__ import annotations

import base64
import re
import smtplib
import time
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid, parsedate_to_datetime
from pathlib import Path

import aiosmtplib
import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from config.settings import SettingsError, load_settings
from gateway.app import build_services
from gateway.intake import claim_key
from gateway.smtp import SmtpIntake
from normalizer import idempotency_key
from tests.channels.test_email_cases import CASES
from tests.conftest import free_port, settings_env
from tests.email_fixtures import (
    OURS,
    MailStack,
    interrupt,
    mail,
    mail_stack,
    sink,
    start_gateway,
    wait_for_smtp,
    wait_until,
)
from tests.helpers import dump_database, png_bytes

__all__ = ["mail_stack", "sink"]  # fixtures

TICKET = re.compile(r"BGR-\d{4}-R?\d{6}-\d")


def ticket_of(reply: EmailMessage) -> str:
    found = TICKET.search(str(reply["Subject"]))
    assert found, reply["Subject"]
    return found.group(0)


def test_a_plain_mail_becomes_a_case_and_gets_an_rfc_3834_reply(mail_stack: MailStack) -> None:
    sender = mail_stack.address("budi")
    original = mail(
        sender,
        "Selamat pagi,\n\nJalan berlubang besar di Jl. Pajajaran depan Tugu Kujang.\n\n"
        "-- \nBudi Santoso\n0812-3456-7890\n",
        "Jalan berlubang di Jl. Pajajaran",
    )
    mail_stack.send(original)

    stored = mail_stack.stored(original["Message-ID"])
    assert stored.kind == "complaint"
    assert stored.text == (
        "Selamat pagi,\n\nJalan berlubang besar di Jl. Pajajaran depan Tugu Kujang."
    )
    assert stored.subject == "Jalan berlubang di Jl. Pajajaran"
    case = mail_stack.case(stored.ticket or "")
    assert (case.topic, case.channel, case.title) == (
        "infrastruktur",
        "email",
        "Jalan berlubang di Jl. Pajajaran",
    )

    (relayed,) = mail_stack.sink.wait_for(sender)
    reply = relayed.message
    assert relayed.mail_from == "<>"  # null return path: nothing answers an auto-reply
    assert relayed.rcpt_tos == (sender,)  # only the sender, nobody else
    assert reply["From"] == OURS
    assert reply["To"] == sender
    assert reply["Cc"] is None and reply["Bcc"] is None
    assert reply["Subject"] == f"[{stored.ticket}] Aduan Anda kami terima"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Auto-Response-Suppress"] == "All"
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert reply["References"] == original["Message-ID"]
    assert re.fullmatch(r"<aduan\.\d+\.[0-9a-f]{20}@localhost>", str(reply["Message-ID"]))
    sent_at = parsedate_to_datetime(str(reply["Date"]))
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=5)
    assert reply["Content-Language"] == "id"
    assert reply.get_content_type() == "text/plain"
    assert f"Nomor tiket: {stored.ticket}" in reply.get_content()
    # The relay took it: its Message-ID is recorded, which is how replies find the case.
    again = wait_until(
        lambda: (s := mail_stack.stored(original["Message-ID"])).deliveries[0].provider_id and s
    )
    assert again.deliveries[0].provider_id == reply["Message-ID"]


def test_an_html_only_mail_is_reduced_to_safe_text(mail_stack: MailStack) -> None:
    sender = mail_stack.address()
    message = mail(sender, subject="Sampah menumpuk")
    message.set_content(
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head><body>"
        "<p>Sampah <b>menumpuk</b>&nbsp;di TPS Pasar Anyar &amp; baunya menyengat.</p>"
        '<img src=x onerror="alert(1)"><p>Mohon diangkut.</p></body></html>',
        subtype="html",
    )
    mail_stack.send(message)
    stored = mail_stack.stored(message["Message-ID"])
    assert stored.text == (
        "Sampah menumpuk di TPS Pasar Anyar & baunya menyengat.\nMohon diangkut."
    )
    assert stored.ticket is not None


def test_a_photo_and_an_inline_image_are_kept_with_their_hash(mail_stack: MailStack) -> None:
    sender = mail_stack.address()
    photo, logo = png_bytes(4, 3), png_bytes(1, 1)
    message = mail(sender, "Got mampet di Jl. Malabar, air meluap ke jalan.", "Got mampet")
    message.add_alternative(
        '<p>Got mampet di Jl. Malabar, air meluap ke jalan.</p><img src="cid:logo">',
        subtype="html",
    )
    message.get_payload()[1].add_related(logo, "image", "png", cid="<logo>")
    message.add_attachment(photo, "image", "png", filename="got mampet.png")
    message.add_attachment(b"MZ\x90\x00" * 64, "application", "x-msdownload", filename="a.exe")
    mail_stack.send(message)

    stored = mail_stack.stored(message["Message-ID"])
    assert stored.text == "Got mampet di Jl. Malabar, air meluap ke jalan."
    kept = {a.filename: a for a in stored.attachments}
    assert set(kept) == {None, "got mampet.png"}
    assert kept["got mampet.png"].data == photo
    assert kept[None].data == logo
    for attachment in stored.attachments:
        assert attachment.content_type == "image/png"
        assert attachment.size == len(attachment.data or b"")
        assert attachment.sha256 is not None and len(attachment.sha256) == 64
    assert stored.raw is not None
    assert [s["filename"] for s in stored.raw["skipped"]] == ["a.exe"]


@pytest.mark.parametrize("cte", ["quoted-printable", "base64"])
def test_indonesian_text_in_either_transfer_encoding(mail_stack: MailStack, cte: str) -> None:
    text = (
        "Saluran air di Jl. Sholeh Iskandar mampet sejak Senin – air meluap sampai ke rumah "
        "warga, kerugian sekitar Rp 1.500.000. Mohon segera ditangani, terima kasih."
    )
    message = mail(mail_stack.address(), text + "\n", "Saluran air mampet", cte=cte)
    assert message["Content-Transfer-Encoding"] == cte
    mail_stack.send(message)
    assert mail_stack.stored(message["Message-ID"]).text == text


def test_an_encoded_word_subject_and_name_are_decoded(mail_stack: MailStack) -> None:
    sender = mail_stack.address()
    message_id = make_msgid(domain="example.org")
    raw = (
        f"From: =?UTF-8?Q?Sri_Rahay=C3=BA?= <{sender}>\r\nTo: {OURS}\r\n"
        "Subject: =?UTF-8?B?TGFtcHUgamFsYW4gbWF0aSDigJMgSmwu?=\r\n"
        " =?ISO-8859-1?Q?_Pajajaran_caf=E9?=\r\n"
        f"Message-ID: {message_id}\r\n\r\nLampu jalan mati sejak tiga hari.\r\n"
    ).encode()
    mail_stack.send(raw, mail_from=sender)
    stored = mail_stack.stored(message_id)
    assert stored.subject == "Lampu jalan mati – Jl. Pajajaran café"
    case = mail_stack.case(stored.ticket or "")
    assert case.title == "Lampu jalan mati – Jl. Pajajaran café"
    assert case.reporter.name == "Sri Rahayú"


def _complain(mail_stack: MailStack, sender: str) -> tuple[EmailMessage, str, EmailMessage]:
    original = mail(sender, "Lampu jalan mati di gang Mawar, gelap sekali.", "Lampu mati")
    mail_stack.send(original)
    (relayed,) = mail_stack.sink.wait_for(sender)
    return original, ticket_of(relayed.message), relayed.message


def _answer(
    reply: EmailMessage, sender: str, body: str, subject: str | None = None
) -> EmailMessage:
    answer = mail(sender, body, subject or f"Re: {reply['Subject']}")
    answer["In-Reply-To"] = reply["Message-ID"]
    answer["References"] = f"{reply['References']} {reply['Message-ID']}"
    return answer


def test_a_reply_to_our_answer_is_a_follow_up_on_the_case(mail_stack: MailStack) -> None:
    budi = mail_stack.address("budi")
    _, ticket, reply = _complain(mail_stack, budi)
    answer = _answer(
        reply,
        budi,
        "Sampai hari ini masih gelap.\n\nPada Sen, 2 Mar 2026 pukul 10.15 "
        f"<{OURS}> menulis:\n> Aduan Anda diterima. Nomor tiket: {ticket}.\n",
    )
    mail_stack.send(answer)

    stored = mail_stack.stored(answer["Message-ID"])
    assert (stored.kind, stored.ticket) == ("followup", ticket)
    assert stored.text == "Sampai hari ini masih gelap."
    second = mail_stack.sink.wait_for(budi, 2)[1].message
    assert ticket_of(second) == ticket
    assert f"Tambahan untuk aduan {ticket}" in second.get_content()
    assert second["In-Reply-To"] == answer["Message-ID"]


def test_in_reply_to_alone_threads_without_the_ticket_in_the_subject(
    mail_stack: MailStack,
) -> None:
    budi = mail_stack.address("budi")
    _, ticket, reply = _complain(mail_stack, budi)
    answer = _answer(reply, budi, "Ini foto tambahannya.", subject="foto tambahan")
    mail_stack.send(answer)
    stored = mail_stack.stored(answer["Message-ID"])
    assert (stored.kind, stored.ticket) == ("followup", ticket)


def test_the_ticket_in_the_subject_alone_threads(mail_stack: MailStack) -> None:
    budi = mail_stack.address("budi")
    _, ticket, _ = _complain(mail_stack, budi)
    again = mail(budi, "Lampunya masih mati.", f"Tambahan [{ticket}]")
    mail_stack.send(again)
    stored = mail_stack.stored(again["Message-ID"])
    assert (stored.kind, stored.ticket) == ("followup", ticket)


def test_a_reply_from_someone_else_is_a_new_complaint_that_references_the_case(
    mail_stack: MailStack,
) -> None:
    budi, siti = mail_stack.address("budi"), mail_stack.address("siti")
    _, ticket, reply = _complain(mail_stack, budi)
    answer = _answer(reply, siti, "Di gang sebelah juga mati.")  # forwarded to her, she replied
    mail_stack.send(answer)

    stored = mail_stack.stored(answer["Message-ID"])
    assert stored.kind == "complaint"
    assert stored.ticket is not None and stored.ticket != ticket
    assert mail_stack.case_note(stored.ticket) == f"Refers to {ticket}"
    (hers,) = mail_stack.sink.wait_for(siti)
    assert ticket_of(hers.message) == stored.ticket
    assert len(mail_stack.sink.to(budi)) == 1  # Budi hears nothing about Siti's mail


def test_automatic_mail_is_kept_but_never_answered(mail_stack: MailStack) -> None:
    kinds: dict[str, tuple[dict[str, str], str | None]] = {
        "auto-submitted": ({"Auto-Submitted": "auto-replied"}, None),
        "precedence bulk": ({"Precedence": "bulk"}, None),
        "mailing list": ({"List-Id": "<warga.lists.example.org>"}, None),
        "null return path": ({}, ""),
        "auto-response suppressed": ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, None),
    }
    sent: dict[str, tuple[str, EmailMessage]] = {}
    for reason, (headers, mail_from) in kinds.items():
        sender = mail_stack.address("otomatis")
        message = mail(
            sender, "Saya sedang cuti sampai 10 Maret.", "Out of office", headers=headers
        )
        mail_stack.send(message, mail_from=mail_from)
        sent[reason] = (sender, message)
    report = next(c for c in CASES if c.file == "delivery-report.eml")
    report_id = make_msgid(domain="mx.example.org")
    mail_stack.send(
        report.raw().replace(b"<dsn.1@mx.example.org>", report_id.encode()), mail_from=""
    )

    for reason, (_, message) in sent.items():
        stored = mail_stack.stored(message["Message-ID"])
        assert stored.kind == "complaint" and stored.ticket is not None  # kept, as a case
        (delivery,) = stored.deliveries
        assert (delivery.status, delivery.error) == ("suppressed", reason)
    bounce = mail_stack.stored(report_id)
    assert (bounce.kind, bounce.ticket, bounce.deliveries) == ("report", None, ())

    # One worker takes jobs in order: once a later mail is answered, these were handled.
    control = mail_stack.address()
    mail_stack.send(mail(control))
    mail_stack.sink.wait_for(control)
    for sender, _ in sent.values():
        assert mail_stack.sink.to(sender) == []
    assert mail_stack.sink.to("MAILER-DAEMON@mx.example.org") == []


def test_no_address_gets_more_than_five_auto_replies_an_hour(mail_stack: MailStack) -> None:
    sender = mail_stack.address("loop")
    # Seven different complaints (a burst of one complaint would be one case, one reply).
    texts = [
        "Jalan berlubang besar di Jl. Pajajaran depan Tugu Kujang.",
        "Sampah menumpuk di TPS Pasar Bogor, bau busuk sekali.",
        "Lampu PJU mati di Gang Mawar, Kelurahan Tegallega, gelap tiap malam.",
        "Banjir setinggi lutut di Jl. Semeru, got tersumbat.",
        "Parkir liar di depan Stasiun Bogor bikin macet.",
        "Antrean di Puskesmas Bogor Timur sangat lama, dokter tidak ada.",
        "Sekolah SDN Polisi 1 minta uang seragam di luar ketentuan PPDB.",
    ]
    messages = [mail(sender, text, f"Aduan {i}") for i, text in enumerate(texts)]
    for message in messages:
        mail_stack.send(message)
    stored = [mail_stack.stored(m["Message-ID"]) for m in messages]
    assert len({s.ticket for s in stored}) == 7  # every mail is a case
    statuses = [s.deliveries[0].status for s in stored]
    assert statuses[5:] == ["suppressed", "suppressed"]
    assert "suppressed" not in statuses[:5]
    mail_stack.sink.wait_for(sender, 5)
    control = mail_stack.address()
    mail_stack.send(mail(control))
    mail_stack.sink.wait_for(control)
    assert len(mail_stack.sink.to(sender)) == 5


def test_a_mail_delivered_twice_is_one_case_and_one_reply(mail_stack: MailStack) -> None:
    sender = mail_stack.address()
    message = mail(sender)
    mail_stack.send(message)
    mail_stack.send(message)  # the sending MTA did not see our 250 and tries again
    first = mail_stack.stored(message["Message-ID"])
    control = mail_stack.address()
    mail_stack.send(mail(control))
    mail_stack.sink.wait_for(control)
    assert len(mail_stack.sink.to(sender)) == 1
    assert len(first.deliveries) == 1


def test_a_confidential_report_by_mail_hides_the_reporter(mail_stack: MailStack) -> None:
    sender = mail_stack.address("rahasia")
    message = mail(
        sender,
        "Petugas kelurahan minta uang pelicin Rp200.000 untuk mengurus KTP saya.",
        "Pungli di kelurahan",
        name="Bambang Sutrisno",
    )
    mail_stack.send(message)
    (relayed,) = mail_stack.sink.wait_for(sender)
    ticket = ticket_of(relayed.message)
    assert "-R" in ticket
    assert "Kode tanda terima" in relayed.message.get_content()
    # A harmless-looking reply in the thread stays with the confidential case, sealed too.
    answer = _answer(relayed.message, sender, "Ini foto kuitansinya.")
    mail_stack.send(answer)
    mail_stack.sink.wait_for(sender, 2)
    stored = mail_stack.stored(answer["Message-ID"])
    assert (stored.kind, stored.ticket, stored.raw) == ("followup", ticket, None)
    everything = dump_database(mail_stack.engine)
    assert "uang pelicin" in everything and "Ini foto kuitansinya." in everything
    for secret in (sender, "Bambang Sutrisno"):
        assert secret not in everything


def test_mail_for_other_domains_is_refused_at_rcpt(mail_stack: MailStack) -> None:
    sender = mail_stack.address()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        mail_stack.send(mail(sender), to=["someone@gmail.com"])
    assert refused.value.recipients["someone@gmail.com"][0] == 550
    # Mixed: ours is taken, the other refused; nothing is relayed, ever.
    message = mail(sender)
    rejected = mail_stack.send(message, to=[OURS, "lapor@aduan.kotabogor.go.id", "x@evil.example"])
    assert set(rejected) == {"x@evil.example"} and rejected["x@evil.example"][0] == 550
    assert mail_stack.stored(message["Message-ID"]).ticket is not None
    assert mail_stack.sink.to("x@evil.example") == []


def test_an_oversize_mail_gets_552(mail_stack: MailStack) -> None:
    sender = mail_stack.address()
    big = mail(sender, "Foto terlampir.")
    big.add_attachment(b"\x89PNG" + bytes(300 * 1024), "image", "png", filename="besar.png")
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        mail_stack.send(big)  # smtplib declares SIZE=: refused at MAIL
    assert refused.value.smtp_code == 552
    with mail_stack.connect() as client:  # a client that does not declare it: refused at DATA
        client.ehlo()
        client.mail(sender)
        client.rcpt(OURS)
        code, _ = client.data(big.as_bytes(policy=policy.SMTP))
        assert code == 552
        small = mail(sender)
        client.sendmail(sender, [OURS], small.as_bytes(policy=policy.SMTP))  # carries on
    assert mail_stack.stored(small["Message-ID"]).ticket is not None


def test_command_floods_are_cut_off(mail_stack: MailStack) -> None:
    with mail_stack.connect() as client:
        client.ehlo()
        codes = [client.noop()[0] for _ in range(10)]
        assert codes == [250] * 10
        assert client.noop()[0] == 421
    with mail_stack.connect() as client:
        client.ehlo()
        client.mail(mail_stack.address())
        codes = [client.rcpt(f"warga{i}@localhost")[0] for i in range(21)]
        assert codes == [250] * 20 + [452]


def test_every_mail_of_the_corpus_is_kept_and_nothing_crashes(mail_stack: MailStack) -> None:
    connection = redis.Redis.from_url(mail_stack.env["REDIS_URL"])
    keys = {}
    for case in CASES:
        key = idempotency_key("email", "smtp", case.parse().provider_message_id)
        connection.delete(claim_key(key))  # the same files went into the other store too
        keys[case.label] = key
    for case in CASES:
        mail_stack.send(case.raw(), mail_from=case.mail_from)
    for case in CASES:
        stored = mail_stack.stored_by_key(keys[case.label])
        expected = {"complaint": ("complaint", "followup")}.get(case.kind, (case.kind,))
        assert stored.kind in expected, case.label
        assert (stored.ticket is None) == (case.kind != "complaint"), case.label
        if case.kind != "complaint":
            assert stored.raw is not None
            assert base64.b64decode(stored.raw["raw_b64"]) == case.raw()
    queue = Queue(mail_stack.settings.queue_name, connection=connection, serializer=JSONSerializer)
    assert FailedJobRegistry(queue=queue).get_job_ids() == []
    assert sum(c.malformed for c in CASES) >= 15
    control = mail_stack.address()
    mail_stack.send(mail(control))  # and the server still answers
    mail_stack.sink.wait_for(control)


def test_no_sender_address_or_name_reaches_a_log(mail_stack: MailStack) -> None:
    logs = mail_stack.log_text()
    assert "mail accepted" in logs  # the gateway did log, just not who
    for address in mail_stack.senders:
        assert address not in logs
    for name in ("Budi Santoso", "Bambang Sutrisno", "Sri Rahay"):
        assert name not in logs


async def test_starttls_when_a_certificate_is_configured(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    env = settings_env(
        tmp_path,
        redis_url,
        database_url,
        ADUAN_SMTP_PORT="0",
        ADUAN_SMTP_TLS_CERT=str(cert),
        ADUAN_SMTP_TLS_KEY=str(key),
    )
    settings = load_settings(env)
    services = build_services(settings, redis_url)
    intake = SmtpIntake(services)
    await intake.start()
    message = mail("tls@example.org")
    try:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=intake.port, start_tls=False)
        await client.connect()
        await client.ehlo()
        assert client.supports_extension("starttls")
        await client.starttls(validate_certs=False)
        assert client.get_transport_info("ssl_object") is not None
        _, answer = await client.sendmail("tls@example.org", [OURS], message.as_bytes())
        assert answer.startswith("2.0.0")
        await client.quit()
    finally:
        await intake.stop()
        await services.intake.close()
        services.engine.dispose()
    key_of = idempotency_key("email", "smtp", message["Message-ID"].strip("<>"))
    claim = redis.Redis.from_url(redis_url).get(claim_key(key_of))
    assert claim is not None and claim.startswith(b"queued:")  # durable before the 250


async def test_a_mail_nothing_can_keep_is_answered_451(database_url: str, tmp_path: Path) -> None:
    # Redis is down and the local spool behind it cannot be written either.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = load_settings(settings_env(tmp_path, dead, database_url, ADUAN_SMTP_PORT="0"))
    services = build_services(settings, dead)
    spool = settings.data_dir / "spool"
    spool.rmdir()
    spool.write_text("a file where the spool directory should be")
    intake = SmtpIntake(services)
    await intake.start()
    try:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=intake.port, start_tls=False)
        await client.connect()
        message = mail("warga@example.org")
        for _ in range(2):  # the sending MTA keeps the mail and tries again later
            with pytest.raises(aiosmtplib.SMTPDataError) as deferred:
                await client.sendmail("warga@example.org", [OURS], message.as_bytes())
            assert deferred.value.code == 451
        await client.quit()
    finally:
        await intake.stop()
        await services.intake.close()
        services.engine.dispose()


def test_ctrl_c_stops_the_smtp_server_cleanly(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(
        tmp_path,
        redis_url,
        f"sqlite:///{tmp_path / 'cases.sqlite3'}",
        ADUAN_HTTP_PORT=str(free_port()),
        ADUAN_SMTP_PORT=str(port),
    )
    log = tmp_path / "serve.log"
    gateway = start_gateway(env, log)
    try:
        wait_for_smtp(port, gateway, log)
        idle = smtplib.SMTP("127.0.0.1", port, timeout=10)
        idle.ehlo()
        idle.mail("warga@example.org")
        started = time.monotonic()
        assert interrupt(gateway) == 0
        assert time.monotonic() - started < 15
        with pytest.raises(smtplib.SMTPServerDisconnected):
            idle.noop()
        with pytest.raises(OSError):
            smtplib.SMTP("127.0.0.1", port, timeout=2)
    finally:
        if gateway.poll() is None:
            gateway.kill()
    output = log.read_text()
    assert f"Email (SMTP)     127.0.0.1:{port} for localhost" in output
    assert "stopping" in output


def test_tls_and_size_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    base = {"ADUAN_DATA_DIR": str(tmp_path)}
    for env, named in (
        ({"ADUAN_SMTP_TLS_CERT": str(cert)}, "ADUAN_SMTP_TLS_KEY"),
        ({"ADUAN_SMTP_TLS_CERT": str(cert), "ADUAN_SMTP_TLS_KEY": "/nonexistent"}, "TLS_KEY"),
        ({"ADUAN_EMAIL_MAX_BYTES": "ten megabytes"}, "ADUAN_EMAIL_MAX_BYTES"),
        ({"ADUAN_EMAIL_MAX_BYTES": "100"}, "ADUAN_EMAIL_MAX_BYTES"),
    ):
        with pytest.raises(SettingsError, match=named):
            load_settings({**base, **env})
    settings = load_settings(
        {**base, "ADUAN_SMTP_TLS_CERT": str(cert), "ADUAN_SMTP_TLS_KEY": str(key)}
    )
    assert (settings.smtp_tls_cert, settings.email_max_bytes) == (cert, 16 * 1024 * 1024)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
