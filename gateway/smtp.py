"""The SMTP intake: aiosmtpd on the running event loop, in front of `Intake`.

A mail is answered `250` only once its complaint is in the queue; when the queue cannot
take it the answer is `451`, and the sending MTA keeps the mail and tries again later.
Only our own recipient domains (or addresses) are accepted, so nothing is ever relayed.
Sender addresses never reach a log: aiosmtpd logs them at INFO, so its logger is quieted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import weakref
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.base import ChannelError, adapter
from channels.email import smtp_request, unparsed
from config.settings import Settings, SettingsError
from gateway.app import Services
from gateway.intake import Intake, QueueUnavailable

log = logging.getLogger("aduan.smtp")

MAX_RECIPIENTS = 20
TIMEOUT_SECONDS = 300  # RFC 5321 4.5.3.2.7: at least five minutes between commands
# Per connection. A sending MTA reuses a connection for many mails, so MAIL and DATA get
# room; anything else repeated this often is a client probing or looping.
COMMAND_LIMITS = {"MAIL": 100, "RCPT": 1000, "DATA": 100, "RSET": 100, "NOOP": 10, "*": 20}
# RFC 5321 says 1,000 octets per line, but much real mail (HTML in one line) has longer
# ones and mail servers accept them; refusing would lose complaints. The size limit holds.
LINE_LIMIT = 64 * 1024
PARSE_CONCURRENCY = 4

ACCEPTED = "250 2.0.0 Message accepted"
TRY_LATER = "451 4.3.0 Temporary failure, please try again later"
NOT_HERE = "550 5.7.1 Relay denied: this server only accepts mail for its own domains"
TOO_MANY = "452 4.5.3 Too many recipients"


def recipient_matcher(entries: tuple[str, ...]) -> Callable[[str], bool]:
    """Entries are domains (`aduan.kotabogor.go.id`) or whole addresses (`lapor@…`)."""
    addresses = {e.lower() for e in entries if "@" in e}
    domains = {e.lower().lstrip("@").rstrip(".") for e in entries if "@" not in e}

    def accepts(address: str) -> bool:
        address = address.strip().lower()
        local, at, domain = address.rpartition("@")
        if not at or not local:
            return False
        return address in addresses or domain.rstrip(".") in domains

    return accepts


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.smtp_tls_cert is None or settings.smtp_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            "Settings 'ADUAN_SMTP_TLS_CERT' and 'ADUAN_SMTP_TLS_KEY' do not name a usable "
            f"certificate and key ({type(exc).__name__})."
        ) from None
    return context


class IntakeHandler:
    """aiosmtpd's hooks: accept our recipients, parse, make the complaint durable, answer."""

    def __init__(self, settings: Settings, intake: Intake) -> None:
        self.accepts = recipient_matcher(settings.email_domains)
        self.intake = intake
        self.adapter = adapter("email")
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._parsing = asyncio.Semaphore(PARSE_CONCURRENCY)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self.accepts(address):
            return NOT_HERE
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_flight += 1
        self.idle.clear()
        try:
            return await self._receive(envelope)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def _receive(self, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        rcpt_tos = list(envelope.rcpt_tos)
        request = smtp_request(raw, mail_from, rcpt_tos)
        async with self._parsing:  # parsing a large mail is CPU work: keep it off the loop
            messages = await asyncio.to_thread(self.adapter.parse, request)
        try:
            await self.intake.submit(messages)
        except (QueueUnavailable, OSError) as exc:
            return self._failed(exc)
        except Exception as exc:
            # The normalizer refused (or failed on) what the adapter let through: keep the
            # mail as it came rather than lose it or have the sender retry it for days.
            why = exc.code if isinstance(exc, ChannelError) else type(exc).__name__
            log.error("mail kept unparsed: the normalizer refused it (%s)", why)
            fallback = unparsed(raw, mail_from, rcpt_tos, f"not a complaint ({why})")
            try:
                await self.intake.submit([fallback])
            except Exception as inner:
                return self._failed(inner)
        kind = messages[0].raw.get("intake", "complaint") if messages else "none"
        log.info("mail accepted: %d bytes, %s", len(raw), kind)
        return ACCEPTED

    def _failed(self, exc: BaseException) -> str:
        if isinstance(exc, QueueUnavailable):
            log.warning("mail deferred (451): the queue is unavailable")
        else:
            log.error("mail deferred (451) after %s", type(exc).__name__)
        return TRY_LATER

    async def handle_exception(self, error: Exception) -> str:
        # The default logs the exception text, which may hold an address.
        log.error("SMTP session error: %s", type(error).__name__)
        return TRY_LATER


class SmtpIntake:
    """Listens on `settings.smtp_host:smtp_port` on the running loop; `stop()` is clean."""

    def __init__(self, services: Services, *, port: int | None = None) -> None:
        self.settings = services.settings
        self.handler = IntakeHandler(services.settings, services.intake)
        self.tls = tls_context(services.settings)
        self.port = services.settings.smtp_port if port is None else port
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def _protocol(self) -> SMTP:
        smtp = _Protocol(
            self.handler,
            data_size_limit=self.settings.email_max_bytes,
            enable_SMTPUTF8=True,
            hostname=self.settings.email_domains[0].rpartition("@")[2],
            ident="aduan ESMTP",
            tls_context=self.tls,
            timeout=TIMEOUT_SECONDS,
            command_call_limit=COMMAND_LIMITS,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.add(smtp)
        return smtp

    async def start(self) -> None:
        # aiosmtpd logs every envelope address at INFO.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, host=self.settings.smtp_host, port=self.port
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; let mails being queued right now finish; close the rest."""
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.handler.idle.wait(), grace)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        self._server = None


class _Protocol(SMTP):
    line_length_limit = LINE_LIMIT
