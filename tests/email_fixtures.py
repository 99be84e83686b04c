"""A running `aduan serve` with its SMTP intake, a worker, and the city's relay as a sink.

Everything is real and on loopback: the gateway and the worker are processes of their
own, mail goes in with smtplib, and the worker's replies leave through ADUAN_SMTP_RELAY
into an aiosmtpd server started here, which keeps what it receives for the tests to read.
"""

from __future__ import annotations

import os
import secrets
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as DbSession

from config.settings import Settings, load_settings
from normalizer import idempotency_key
from tests.conftest import ROOT, free_port, settings_env, start_worker, stop_process
from workers import models
from workers.db import make_engine, session_factory

T = TypeVar("T")
OURS = "aduan@localhost"
MAX_BYTES = 256 * 1024


def wait_until(check: Callable[[], T | None], within: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what or check}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Relayed:
    """A mail the relay received: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage


class _SinkHandler:
    def __init__(self) -> None:
        self.received: list[Relayed] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(
                Relayed(envelope.mail_from or "", tuple(envelope.rcpt_tos), message)
            )
        return "250 OK"


@dataclass
class Sink:
    """The city's outbound relay, as far as aduan can tell."""

    controller: Controller
    handler: _SinkHandler

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.controller.port}"

    def to(self, address: str) -> list[Relayed]:
        with self.handler.lock:
            return [r for r in self.handler.received if address in r.rcpt_tos]

    def wait_for(self, address: str, count: int = 1, within: float = 30.0) -> list[Relayed]:
        return wait_until(
            lambda: (found := self.to(address)) and len(found) >= count and found,
            within,
            f"{count} mail(s) relayed",
        )


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    handler = _SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield Sink(controller, handler)
    finally:
        controller.stop()


@dataclass(frozen=True)
class Stored:
    """An inbound message as the case store keeps it."""

    kind: str
    text: str
    subject: str | None
    ticket: str | None
    case_id: int | None
    confidential: bool
    raw: dict[str, Any] | None
    attachments: tuple[models.Attachment, ...]
    deliveries: tuple[models.Delivery, ...]


@dataclass
class MailStack:
    env: dict[str, str]
    settings: Settings
    smtp_port: int
    gateway: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    logs: tuple[Path, ...]
    sink: Sink
    engine: Engine
    senders: set[str] = field(default_factory=set)

    def address(self, who: str = "warga") -> str:
        """A sender address of its own for each test: the reply cap counts per address."""
        address = f"{who}.{uuid.uuid4().hex[:8]}@example.org"
        self.senders.add(address)
        return address

    def connect(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=15)

    def send(
        self,
        mail: EmailMessage | bytes,
        *,
        mail_from: str | None = None,
        to: Sequence[str] = (OURS,),
    ) -> dict[str, tuple[int, bytes]]:
        if isinstance(mail, EmailMessage):
            envelope = mail_from if mail_from is not None else str(mail["From"].addresses[0])
            data = mail.as_bytes(policy=policy.SMTP)
        else:
            envelope, data = mail_from or "", mail
        with self.connect() as client:
            return client.sendmail(envelope, list(to), data)

    def session(self) -> DbSession:
        return session_factory(self.engine)()

    def stored(self, message_id: str, within: float = 30.0) -> Stored:
        key = idempotency_key("email", "smtp", message_id.strip().strip("<>"))
        return self.stored_by_key(key, within)

    def stored_by_key(self, key: str, within: float = 30.0) -> Stored:
        def find() -> Stored | None:
            with self.session() as session:
                message = session.scalar(
                    select(models.Message).where(models.Message.idempotency_key == key)
                )
                if message is None:
                    return None
                case = message.case
                deliveries = session.scalars(
                    select(models.Delivery).where(models.Delivery.dedupe_key.startswith(key))
                ).all()
                return Stored(
                    kind=message.kind,
                    text=message.text,
                    subject=message.subject,
                    ticket=case.ticket if case else None,
                    case_id=case.id if case else None,
                    confidential=bool(case and case.confidential),
                    raw=message.raw,
                    attachments=tuple(message.attachments),
                    deliveries=tuple(deliveries),
                )

        return wait_until(find, within, f"message {key} stored")

    def case(self, ticket: str) -> models.Case:
        with self.session() as session:
            case = session.scalar(select(models.Case).where(models.Case.ticket == ticket))
            assert case is not None
            assert case.reporter is not None  # loaded while the session is open
            session.expunge_all()
            return case

    def case_note(self, ticket: str) -> str | None:
        with self.session() as session:
            return session.scalar(
                select(models.StatusEvent.note)
                .join(models.Case, models.Case.id == models.StatusEvent.case_id)
                .where(models.Case.ticket == ticket)
                .order_by(models.StatusEvent.id)
                .limit(1)
            )

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def mail(
    sender: str,
    body: str = "Jalan berlubang di Jl. Pajajaran, sudah dua minggu.",
    subject: str = "Jalan rusak",
    *,
    name: str = "Budi Santoso",
    headers: dict[str, str] | None = None,
    cte: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>" if name else sender
    message["To"] = OURS
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(body, cte=cte) if cte else message.set_content(body)
    return message


def wait_for_smtp(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"aduan serve exited: {log.read_text(errors='replace')}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                if client.noop()[0] == 250:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no SMTP on port {port}: {log.read_text(errors='replace')}")


def start_gateway(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--no-worker"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=handle,
            stderr=handle,
        )


def interrupt(process: subprocess.Popen[bytes], timeout: float = 20) -> int | None:
    """Ctrl-C, as a person at the terminal would; the exit code, or None if it hung."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
    return process.returncode


@pytest.fixture(scope="module")
def mail_stack(
    redis_url: str, database_url: str, sink: Sink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailStack]:
    tmp = tmp_path_factory.mktemp("mail")
    smtp_port = free_port()
    env = settings_env(
        tmp,
        redis_url,
        database_url,
        ADUAN_QUEUE=f"aduan-mail-{secrets.token_hex(3)}",
        ADUAN_HTTP_PORT=str(free_port()),
        ADUAN_SMTP_PORT=str(smtp_port),
        ADUAN_SMTP_RELAY=sink.address,
        ADUAN_EMAIL_DOMAINS="localhost,aduan.kotabogor.go.id",
        ADUAN_EMAIL_MAX_BYTES=str(MAX_BYTES),
    )
    gateway_log, worker_log = tmp / "gateway.log", tmp / "worker.log"
    gateway = start_gateway(env, gateway_log)
    worker: subprocess.Popen[bytes] | None = None
    engine = make_engine(load_settings(env).effective_database_url)
    try:
        wait_for_smtp(smtp_port, gateway, gateway_log)  # serve has migrated the store by now
        worker = start_worker(env, worker_log)
        yield MailStack(
            env,
            load_settings(env),
            smtp_port,
            gateway,
            worker,
            (gateway_log, worker_log),
            sink,
            engine,
        )
    finally:
        interrupt(gateway)
        if worker is not None:
            stop_process(worker)
        engine.dispose()
