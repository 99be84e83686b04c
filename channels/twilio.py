"""Twilio Programmable Messaging: SMS and WhatsApp webhooks, signed with the auth token."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from twilio.request_validator import RequestValidator, compare

from channels.base import Attachment, ChannelError, InboundMessage, Location, RawRequest
from channels.sms import Receipt

log = logging.getLogger("aduan.channels.twilio")

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
MAX_BODY_CHARS = 5000  # SMS bodies reach 1,600 characters, WhatsApp ones 4,096
MAX_MEDIA = 10  # Twilio's own limit per message
_ID_FIELDS = ("MessageSid", "SmsMessageSid", "SmsSid")
_CHANNELS = {"whatsapp": "whatsapp", "sms": "sms", "tel": "sms"}


class _Params(dict[str, list[str]]):
    """Form fields as the validator reads a multi-dict: every value of a repeated field."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def _single(value: Sequence[str]) -> str | list[str]:
    return value[0] if len(value) == 1 else list(value)


def _coordinate(value: str | None, field: str, bound: float) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise ChannelError(400, "invalid", f"'{field}' must be a number.", field) from None
    if not math.isfinite(number) or abs(number) > bound:
        raise ChannelError(
            400, "out_of_range", f"'{field}' must be between -{bound:g} and {bound:g}.", field
        )
    return number


class TwilioAdapter:
    """An incoming SMS or WhatsApp message, or a status callback, from Twilio."""

    name: ClassVar[str] = "twilio"

    def verify(self, request: RawRequest, auth_token: str, urls: Sequence[str]) -> None:
        """Accept the request only if Twilio signed it for one of the URLs it may have called.

        `urls` are the public URLs this request may have been sent to (the configured one
        first); the validator itself tries each with and without the default port.
        """
        signature = request.header(SIGNATURE_HEADER)
        if not signature:
            raise ChannelError(
                403, "missing_signature", f"The {SIGNATURE_HEADER} header is missing."
            )
        if request.header(SIGNATURE_SETTINGS_HEADER):
            raise ChannelError(
                403,
                "unsupported_signature",
                "This request is signed with a Webhooks SharedKey; aduan checks signatures "
                "made with the account's auth token. Remove the Webhook Rule for this URL.",
            )
        validator = RequestValidator(auth_token)
        params = _Params({key: list(values) for key, values in request.form.items()})
        # Twilio signed the URL it called, nearly always the configured one as written:
        # check that first. The validator computes two signatures every time (the URL
        # with and without its default port), and is asked only when this one fails.
        if any(compare(validator.compute_signature(url, params), signature) for url in urls):
            return
        if not any(validator.validate(url, params, signature) for url in urls):
            raise ChannelError(
                403,
                "bad_signature",
                f"The {SIGNATURE_HEADER} does not match this request; check "
                "ADUAN_TWILIO_AUTH_TOKEN and ADUAN_PUBLIC_URL.",
            )

    def parse(self, request: RawRequest) -> list[InboundMessage]:
        sid = next((v for f in _ID_FIELDS if (v := request.field(f))), None)
        if not sid:
            raise ChannelError(400, "required", "'MessageSid' is required.", "MessageSid")
        sender = (request.field("From") or "").strip()
        if not sender:
            raise ChannelError(400, "required", "'From' is required.", "From")
        scheme, colon, _ = sender.partition(":")
        channel = _CHANNELS.get(scheme.lower()) if colon else "sms"
        if channel is None:
            raise ChannelError(
                400,
                "unsupported_channel",
                f"'{scheme}:' addresses are not a channel aduan answers (SMS and WhatsApp only).",
                "From",
            )
        body = request.field("Body") or ""
        if len(body) > MAX_BODY_CHARS:
            raise ChannelError(
                413,
                "too_long",
                f"'Body' is {len(body)} characters; at most {MAX_BODY_CHARS} are accepted.",
                "Body",
            )
        replied = request.field("OriginalRepliedMessageSid")
        return [
            InboundMessage(
                channel=channel,
                provider="twilio",
                provider_message_id=sid,
                sender=sender,
                sender_name=request.field("ProfileName"),
                recipient=request.field("To"),
                text=body,
                attachments=self._media(request),
                location=self._location(request),
                reply_to=(replied,) if replied else (),
                raw=self._raw(request),
            )
        ]

    def receipts(self, request: RawRequest) -> list[Receipt]:
        sid = next((v for f in _ID_FIELDS if (v := request.field(f))), None)
        status = request.field("MessageStatus") or request.field("SmsStatus")
        if not sid or not status:
            raise ChannelError(
                400, "required", "A status callback needs 'MessageSid' and 'MessageStatus'."
            )
        code = request.field("ErrorCode")
        error = f"twilio {code}" if code and code != "0" else None
        return [Receipt("twilio", sid, status.strip().lower(), error)]

    def _media(self, request: RawRequest) -> tuple[Attachment, ...]:
        count_text = (request.field("NumMedia") or "0").strip()
        if not count_text.isdigit() or int(count_text) > MAX_MEDIA:
            raise ChannelError(
                400, "invalid", f"'NumMedia' must be a number from 0 to {MAX_MEDIA}.", "NumMedia"
            )
        attachments = []
        for index in range(int(count_text)):
            url = request.field(f"MediaUrl{index}")
            if not url or not url.startswith(("https://", "http://")):
                raise ChannelError(
                    400,
                    "invalid",
                    f"'MediaUrl{index}' must be an http(s) URL.",
                    f"MediaUrl{index}",
                )
            content_type = request.field(f"MediaContentType{index}") or "application/octet-stream"
            attachments.append(Attachment(content_type=content_type.strip().lower(), url=url))
        return tuple(attachments)

    def _location(self, request: RawRequest) -> Location | None:
        lat = _coordinate(request.field("Latitude"), "Latitude", 90)
        lon = _coordinate(request.field("Longitude"), "Longitude", 180)
        if (lat is None) != (lon is None):
            raise ChannelError(
                400, "required", "Give both 'Latitude' and 'Longitude', or neither.", "Latitude"
            )
        location = Location(
            lat=lat,
            lon=lon,
            address=(request.field("Address") or "").strip() or None,
            label=(request.field("Label") or "").strip() or None,
        )
        return None if location.is_empty() else location

    def _raw(self, request: RawRequest) -> Mapping[str, Any]:
        raw: dict[str, Any] = {key: _single(values) for key, values in request.form.items()}
        token = request.header(IDEMPOTENCY_HEADER)
        if token:
            raw["_idempotency_token"] = token
        return raw
