"""Outbound senders by reply channel. A provider module registers a factory here; when
its factory returns None (no credentials configured) the reply goes to the outbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol

from requests.adapters import HTTPAdapter

if TYPE_CHECKING:
    import requests

    from workers.context import Context


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    channel: str
    to: str
    body: str
    subject: str | None
    in_reply_to: str | None
    language: str
    case_id: int | None = None
    reporter_id: int | None = None
    kind: str = "reply"


@dataclass(frozen=True)
class SendResult:
    status: str  # sent, outbox, failed (permanent), queued (try again later)
    provider: str | None = None
    provider_id: str | None = None
    error: str | None = None


class SendDeferred(Exception):
    """The provider could not take the message this time (5xx, throttled, timed out,
    unreachable): the reply job is retried later, with backoff.

    Its text is recorded on the delivery and kept with the failed job, so it names codes
    and exception types only, never the provider's words, which may quote the recipient.
    `retry_after` is the provider's own hint (seconds), if it gave one.
    """

    def __init__(self, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP `Retry-After` value (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def keep_connections(session: requests.Session) -> requests.Session:
    """`session`, keeping as many connections to a provider open as a worker has sends
    out at once (workers.replies.SEND_THREADS): requests keeps 10 by default (the twilio
    package 6 on two CPUs), and every send beyond them opens a connection of its own, a
    TCP and TLS handshake before the provider even reads the message."""
    from workers.replies import SEND_THREADS  # here: workers.replies imports the senders

    for scheme in ("https://", "http://"):
        session.mount(scheme, HTTPAdapter(pool_maxsize=SEND_THREADS))
    return session


class Sender(Protocol):
    def send(self, message: Outgoing) -> SendResult: ...


class OutboxSender:
    """No provider configured: the reply is kept for operators to see, not sent."""

    def send(self, message: Outgoing) -> SendResult:
        return SendResult(status="outbox", provider="outbox")


SenderFactory = Callable[["Context"], "Sender | None"]
_FACTORIES: dict[str, list[SenderFactory]] = {}


def register(channel: str, factory: SenderFactory) -> None:
    _FACTORIES.setdefault(channel, []).append(factory)


def sender_for(context: Context, channel: str) -> Sender:
    for factory in _FACTORIES.get(channel, []):
        sender = factory(context)
        if sender is not None:
            return sender
    return OutboxSender()
