"""Replies through the WhatsApp Cloud API, and the choice of provider for WhatsApp replies.

Free text is allowed only within 24 hours of the reporter's last message (the customer
service window); outside it, a notification goes out as the approved template named by
ADUAN_META_TEMPLATE_NAME, whose body has one variable ({{1}}) that carries the reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import requests
import requests.auth
from sqlalchemy import select

from workers import models
from workers.senders import (
    Outgoing,
    SendDeferred,
    Sender,
    SendResult,
    keep_connections,
    register,
    retry_after_seconds,
)
from workers.senders.twilio import TwilioSender

if TYPE_CHECKING:
    from workers.context import Context

log = logging.getLogger("aduan.senders.meta")

GRAPH_VERSION = "v23.0"
SERVICE_WINDOW = timedelta(hours=24)
OUTSIDE_WINDOW_ERRORS = frozenset({131047})  # "Re-engagement message": the window is closed
# Errors that pass, although Meta answers most of them with HTTP 400: throttling (4, 17,
# 80007, 130429 throughput, 131048 spam rate, 131056 pair rate) and Meta's own trouble
# (1 unknown, 2 service, 131000 something went wrong, 131016 and 133004 unavailable).
TRANSIENT_ERRORS = frozenset({1, 2, 4, 17, 80007, 130429, 131000, 131016, 131048, 131056, 133004})
# 190: the access token was refused (they expire). Every reply would fail alike until an
# operator sets a new one, so the replies are retried, and then wait in `aduan failed
# list` to be requeued, rather than failed for good.
CREDENTIAL_ERRORS = frozenset({190})
TIMEOUT_SECONDS = 20


class GraphUnavailable(SendDeferred):
    """The Graph API did not answer usefully this time: try again later."""


class GraphRefusal(Exception):
    """The Graph API refused the request (4xx): sending it again will not help."""

    def __init__(self, status: int, code: int | None) -> None:
        super().__init__(status, code)
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"meta {self.code if self.code is not None else '?'} (HTTP {self.status})"


class _Bearer(requests.auth.AuthBase):
    """The access token, as requests' own auth: a credential in `~/.netrc` cannot take
    its place, and a redirect to another host does not carry it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@lru_cache(maxsize=1)
def graph_session() -> requests.Session:
    """The worker's connections to the Graph API, kept open from one send to the next."""
    return keep_connections(requests.Session())


def graph_call(
    url: str, token: str, payload: dict[str, Any] | None = None, timeout: float = TIMEOUT_SECONDS
) -> dict[str, Any]:
    """One Graph API call: the JSON answer, GraphRefusal (4xx) or GraphUnavailable (5xx,
    throttled, timed out, unreachable)."""
    if not url.startswith(("https://", "http://")):
        raise GraphRefusal(0, None)
    auth = _Bearer(token)
    try:
        if payload is None:
            response = graph_session().get(url, auth=auth, timeout=timeout)
        else:
            response = graph_session().post(url, json=payload, auth=auth, timeout=timeout)
        status = response.status_code
        if status >= 400:
            code = _error_code(response)
            if (
                status in (401, 408, 429)
                or status >= 500
                or code in TRANSIENT_ERRORS
                or code in CREDENTIAL_ERRORS
            ):
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                described = f"meta {code} (HTTP {status})" if code is not None else f"HTTP {status}"
                raise GraphUnavailable(described, retry_after=wait)
            raise GraphRefusal(status, code)
        answer = response.json() if response.content else {}
    except (requests.RequestException, ValueError) as exc:
        # No answer in time, none at all, or one that is not JSON.
        raise GraphUnavailable(f"meta unreachable ({type(exc).__name__})") from None
    return answer if isinstance(answer, dict) else {}


def _error_code(response: requests.Response) -> int | None:
    try:
        return int(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class LastInbound:
    provider: str
    received_at: datetime


def last_inbound(context: Context, reporter_id: int | None) -> LastInbound | None:
    """The reporter's latest WhatsApp message to us, through whichever provider."""
    if reporter_id is None:
        return None
    with context.sessions() as session:
        row = session.execute(
            select(models.Message.provider, models.Message.received_at)
            .where(
                models.Message.reporter_id == reporter_id,
                models.Message.direction == "in",
                models.Message.channel == "whatsapp",
            )
            .order_by(models.Message.received_at.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    received = row.received_at
    if received.tzinfo is None:  # SQLite keeps no offset; aduan stores UTC
        received = received.replace(tzinfo=UTC)
    return LastInbound(row.provider, received)


class MetaSender:
    def __init__(self, context: Context) -> None:
        settings = context.settings
        assert settings.meta_access_token and settings.meta_phone_number_id
        self.context = context
        self.token = settings.meta_access_token
        self.url = (
            f"{settings.meta_graph_url}/{GRAPH_VERSION}/{settings.meta_phone_number_id}/messages"
        )
        self.template = settings.meta_template_name
        self.template_language = settings.meta_template_language
        self.timeout = settings.send_timeout_seconds or TIMEOUT_SECONDS

    @classmethod
    def create(cls, context: Context) -> MetaSender | None:
        settings = context.settings
        if not (settings.meta_access_token and settings.meta_phone_number_id):
            return None
        return cls(context)

    def send(self, message: Outgoing, last: LastInbound | None = None) -> SendResult:
        last = last or last_inbound(self.context, message.reporter_id)
        window_open = last is not None and datetime.now(UTC) - last.received_at < SERVICE_WINDOW
        to = message.to.lstrip("+")
        if window_open:
            try:
                return self._post(self._text(to, message.body))
            except GraphRefusal as refusal:
                if refusal.code not in OUTSIDE_WINDOW_ERRORS:
                    return SendResult(status="failed", provider="meta", error=str(refusal))
                # Meta's clock says the window closed before ours did: use the template.
        if not self.template:
            return SendResult(
                status="failed",
                provider="meta",
                error="the 24-hour window is closed and ADUAN_META_TEMPLATE_NAME is not set",
            )
        try:
            return self._post(self._template(to, message.body))
        except GraphRefusal as refusal:
            return SendResult(status="failed", provider="meta", error=str(refusal))

    def _post(self, payload: dict[str, Any]) -> SendResult:
        answer = graph_call(self.url, self.token, payload, self.timeout)
        sent = answer.get("messages")
        if not isinstance(sent, list) or not sent or not isinstance(sent[0], dict):
            raise GraphUnavailable("the answer names no message id")
        log.info("sent a WhatsApp %s", payload["type"])
        return SendResult(status="sent", provider="meta", provider_id=str(sent[0].get("id")))

    @staticmethod
    def _text(to: str, body: str) -> dict[str, Any]:
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": body},
        }

    def _template(self, to: str, body: str) -> dict[str, Any]:
        # Template variables may hold no newlines, tabs or runs of spaces.
        flat = " ".join(body.split())
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": self.template,
                "language": {"code": self.template_language},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": flat}]}],
            },
        }


class WhatsAppRouter:
    """Both providers configured: answer each reporter through the one they wrote to."""

    def __init__(self, context: Context, meta: MetaSender, twilio: TwilioSender) -> None:
        self.context = context
        self.meta = meta
        self.twilio = twilio

    def send(self, message: Outgoing) -> SendResult:
        last = last_inbound(self.context, message.reporter_id)
        if last is not None and last.provider == "twilio":
            return self.twilio.send(message)
        return self.meta.send(message, last)


def whatsapp_sender(context: Context) -> Sender | None:
    meta = MetaSender.create(context)
    twilio = TwilioSender.create(context, "whatsapp")
    if meta is not None and twilio is not None:
        return WhatsAppRouter(context, meta, twilio)
    return meta or twilio


register("whatsapp", whatsapp_sender)
