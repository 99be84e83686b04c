"""A fake outbound mail relay (the city's smarthost) on loopback, with programmable refusals.

Its answers at RCPT can be set per recipient: `refuse_next(address, "451 ...")` for the
next attempts, `refuse_always(address, "550 ...")` until `recover(address)`. What it takes
is kept in `accepted()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port


@dataclass(frozen=True)
class Relayed:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage


@dataclass
class FakeRelay:
    accepted_mail: list[Relayed] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # every RCPT address, in order
    _next: dict[str, list[str]] = field(default_factory=dict)
    _always: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def address(self) -> str:
        assert self._controller is not None
        return f"127.0.0.1:{self._controller.port}"

    def refuse_next(self, address: str, *answers: str) -> None:
        with self._lock:
            self._next.setdefault(address.lower(), []).extend(answers)

    def refuse_always(self, address: str, answer: str) -> None:
        with self._lock:
            self._always[address.lower()] = answer

    def recover(self, address: str) -> None:
        with self._lock:
            self._always.pop(address.lower(), None)
            self._next.pop(address.lower(), None)

    def accepted(self, address: str | None = None) -> list[Relayed]:
        with self._lock:
            return [r for r in self.accepted_mail if address is None or address in r.rcpt_tos]

    def tried(self, address: str) -> int:
        with self._lock:
            return sum(1 for a in self.attempts if a == address.lower())

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        key = address.lower()
        with self._lock:
            self.attempts.append(key)
            answer = self._always.get(key)
            if answer is None and self._next.get(key):
                answer = self._next[key].pop(0)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.accepted_mail.append(
                Relayed(envelope.mail_from or "", tuple(envelope.rcpt_tos), message)
            )
        return "250 2.0.0 OK queued"

    def start(self) -> FakeRelay:
        self._controller = Controller(self, hostname="127.0.0.1", port=free_port())
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
