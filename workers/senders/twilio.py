"""Replies through the Twilio REST API: SMS, and WhatsApp for reporters who came through Twilio."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from channels.sms import fold_to_gsm7, segments
from workers.senders import (
    Outgoing,
    SendDeferred,
    SendResult,
    keep_connections,
    register,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from workers.context import Context

log = logging.getLogger("aduan.senders.twilio")

TWILIO_API = "https://api.twilio.com"
TIMEOUT_SECONDS = 20
# The client reads TWILIO_* from os.environ unless it is given an environment of its own.
_NO_ENVIRONMENT = {"TWILIO_EDGE": "", "TWILIO_REGION": ""}
# Twilio's own request log names URLs and headers; aduan's logs stay quiet about replies.
_http_log = logging.getLogger("aduan.senders.twilio.http")
_http_log.setLevel(logging.WARNING)


class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The package's extension point for HTTP (a custom `http_client`), sending every
    request for api.twilio.com to the configured ADUAN_TWILIO_API_URL instead.

    Every request has a timeout (requests would otherwise wait forever on a provider
    that accepted the connection and went quiet), and the last answer's `Retry-After`
    is kept, per thread, for a throttled send to honour."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        super().__init__(timeout=timeout, logger=_http_log)
        self.base_url = base_url.rstrip("/")
        self._last = threading.local()
        keep_connections(self.session)

    @property
    def retry_after(self) -> str | None:
        return getattr(self._last, "retry_after", None)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API + "/") and self.base_url != TWILIO_API:
            url = self.base_url + url[len(TWILIO_API) :]
        self._last.retry_after = None
        response = super().request(method, url, *args, **kwargs)
        self._last.retry_after = (response.headers or {}).get("Retry-After")
        return response


@lru_cache(maxsize=4)
def twilio_client(
    account_sid: str, auth_token: str, base_url: str, timeout: float = TIMEOUT_SECONDS
) -> Any:
    return Client(
        account_sid,
        auth_token,
        http_client=BaseUrlHttpClient(base_url, timeout),
        environment=_NO_ENVIRONMENT,
    )


# 401: the credentials were refused. Every reply would fail alike until an operator fixes
# them, so the replies are retried, and then wait in `aduan failed list` to be requeued,
# rather than failed for good. 21611: the sender number's queue is full, for now.
TRANSIENT_STATUSES = frozenset({401, 408, 429})
TRANSIENT_CODES = frozenset({20429, 21611})


def is_transient(exc: TwilioRestException | TwilioServiceException) -> bool:
    status = int(exc.status or 0)
    return status in TRANSIENT_STATUSES or status >= 500 or exc.code in TRANSIENT_CODES


class TwilioSender:
    def __init__(self, context: Context, channel: str, sender: str) -> None:
        settings = context.settings
        assert settings.twilio_account_sid and settings.twilio_auth_token
        self.client = twilio_client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_url,
            settings.send_timeout_seconds or TIMEOUT_SECONDS,
        )
        self.channel = channel
        self.sender = sender
        self.status_callback = f"{settings.public_url}/webhooks/twilio/status"

    @classmethod
    def create(cls, context: Context, channel: str) -> TwilioSender | None:
        settings = context.settings
        sender = settings.twilio_sms_from if channel == "sms" else settings.twilio_whatsapp_from
        if not (settings.twilio_account_sid and settings.twilio_auth_token and sender):
            return None
        if channel == "whatsapp" and not sender.startswith("whatsapp:"):
            sender = f"whatsapp:{sender}"
        return cls(context, channel, sender)

    def send(self, message: Outgoing) -> SendResult:
        body = message.body
        to = message.to
        if self.channel == "sms":
            body = fold_to_gsm7(body)
            shape = segments(body)
            log.info(
                "delivery %s: %s, %d segment(s)", message.delivery_id, shape.encoding, shape.count
            )
        else:
            to = f"whatsapp:{to}"
        try:
            sent = self.client.messages.create(
                to=to, from_=self.sender, body=body, status_callback=self.status_callback
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            # Twilio's message text can quote the number; the code says enough.
            error = f"twilio {exc.code} (HTTP {exc.status})"
            if is_transient(exc):
                wait = retry_after_seconds(self.client.http_client.retry_after)
                raise SendDeferred(error, retry_after=wait) from None
            return SendResult(status="failed", provider="twilio", error=error)
        except (requests.RequestException, TwilioException) as exc:
            # Timed out, refused, reset, or an answer that is not Twilio's: try again later.
            raise SendDeferred(f"twilio unreachable ({type(exc).__name__})") from None
        return SendResult(status="sent", provider="twilio", provider_id=str(sent.sid))


def sms_sender(context: Context) -> TwilioSender | None:
    return TwilioSender.create(context, "sms")


register("sms", sms_sender)
# WhatsApp is registered with the Cloud API sender (workers/senders/meta.py), which
# routes each reporter to the provider they wrote through.
