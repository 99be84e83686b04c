"""Email replies through the configured relay (`ADUAN_SMTP_RELAY`), as RFC 3834 asks.

Every reply is `Auto-Submitted: auto-replied`, answers the mail it replies to
(`In-Reply-To`, `References`), goes only to the reporter, and leaves with a null return
path so that nothing ever answers it back. Its Message-ID is derived from the delivery
id and the secret key: the store recognises replies to it without any lookup table, and
a retried send carries the same Message-ID.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

from workers.senders import Outgoing, SendDeferred, SendResult, register

if TYPE_CHECKING:
    from config.settings import Settings
    from workers.context import Context

TIMEOUT_SECONDS = 30
_OUR_ID = re.compile(r"<aduan\.(\d{1,18})\.([0-9a-f]{20})@[^<>\s]+>")
_MSG_ID = re.compile(r"<[^<>\s\x00-\x1f\x7f]{1,250}>")


class RelayUnavailable(SendDeferred):
    """The relay could not take the reply now; the job is retried later."""


def _tag(settings: Settings, delivery_id: int) -> str:
    key = hashlib.sha256(b"aduan-message-id\x00" + settings.secret_key.encode()).digest()
    return hmac.new(key, str(delivery_id).encode(), hashlib.sha256).hexdigest()[:20]


def _domain(settings: Settings) -> str:
    return settings.email_from.rpartition("@")[2] or "localhost"


def reply_message_id(settings: Settings, delivery_id: int) -> str:
    return f"<aduan.{delivery_id}.{_tag(settings, delivery_id)}@{_domain(settings)}>"


def delivery_of(settings: Settings, message_id: str) -> int | None:
    """The delivery a Message-ID of ours was sent for; None for anyone else's."""
    match = _OUR_ID.fullmatch(message_id.strip())
    if match is None:
        return None
    delivery_id = int(match.group(1))
    if not hmac.compare_digest(match.group(2), _tag(settings, delivery_id)):
        return None
    return delivery_id


def build_reply(settings: Settings, message: Outgoing) -> EmailMessage:
    reply = EmailMessage()
    reply["From"] = settings.email_from
    reply["To"] = message.to
    reply["Subject"] = message.subject or "Aduan"
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = reply_message_id(settings, message.delivery_id)
    parent = message.in_reply_to
    if parent and _MSG_ID.fullmatch(parent):
        reply["In-Reply-To"] = parent
        reply["References"] = parent
    reply["Auto-Submitted"] = "auto-replied"
    # Exchange and Outlook: no out-of-office or other automatic answer to this one.
    reply["X-Auto-Response-Suppress"] = "All"
    reply.set_content(message.body)  # clears Content-* headers: set them after
    reply["Content-Language"] = message.language
    return reply


class SmtpSender:
    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.timeout = settings.send_timeout_seconds or TIMEOUT_SECONDS

    def send(self, message: Outgoing) -> SendResult:
        try:
            reply = build_reply(self.settings, message)
        except (ValueError, TypeError, IndexError) as exc:
            error = f"reply cannot be built ({type(exc).__name__})"
            return SendResult(status="failed", provider="smtp", error=error)
        message_id = str(reply["Message-ID"])
        try:
            with smtplib.SMTP(
                self.host, self.port, timeout=self.timeout, local_hostname=_domain(self.settings)
            ) as relay:
                # Null return path (RFC 3834 3.3): a bounce of an auto-reply goes nowhere.
                relay.send_message(reply, from_addr="", to_addrs=[message.to])
        except smtplib.SMTPRecipientsRefused as exc:
            # Only codes: the relay's text often repeats the address, which must not leak.
            codes = sorted({code for code, _ in exc.recipients.values()})
            if all(code >= 500 for code in codes):
                return SendResult(
                    status="failed", provider="smtp", error=f"relay refused the recipient {codes}"
                )
            raise RelayUnavailable(f"relay deferred the recipient {codes}") from None
        except smtplib.SMTPNotSupportedError:
            # An internationalised address and a relay without SMTPUTF8: retrying won't help.
            return SendResult(status="failed", provider="smtp", error="relay lacks SMTPUTF8")
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                return SendResult(
                    status="failed", provider="smtp", error=f"relay refused ({exc.smtp_code})"
                )
            raise RelayUnavailable(f"relay deferred ({exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RelayUnavailable(f"relay unreachable ({type(exc).__name__})") from None
        return SendResult(status="sent", provider="smtp", provider_id=message_id)


def smtp_sender(context: Context) -> SmtpSender | None:
    relay = context.settings.smtp_relay
    if relay is None:
        return None
    host, _, port = relay.rpartition(":")
    return SmtpSender(context.settings, host.strip("[]"), int(port))


register("email", smtp_sender)
