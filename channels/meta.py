"""The WhatsApp Cloud API (Meta): the verification handshake and signed, batched notifications.

One POST may carry many entries, each with changes that hold messages and statuses. A
message that cannot be read is skipped (and counted) rather than failing its batch: Meta
retries a refused batch for days, and the readable messages in it would wait with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from channels.base import Attachment, ChannelError, InboundMessage, Location, RawRequest
from channels.sms import Receipt

log = logging.getLogger("aduan.channels.meta")

SIGNATURE_HEADER = "X-Hub-Signature-256"
MEDIA_PREFIX = "meta-media:"  # Attachment.url for media a worker fetches by its Graph id
MEDIA_TYPES = ("image", "video", "audio", "document")
# Not complaints: nobody expects an answer to them, and answering would start a loop.
IGNORED_TYPES = ("reaction", "system", "request_welcome", "ephemeral")


@dataclass(frozen=True)
class Notifications:
    messages: list[InboundMessage] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    ignored: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class _Content:
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None


class _Unreadable(ValueError):
    pass


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Unreadable(f"{what} is not an object")
    return value


def _string(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _media(kind: str) -> Callable[[Mapping[str, Any]], _Content]:
    def read(message: Mapping[str, Any]) -> _Content:
        media = _object(message.get(kind), kind)
        media_id = _string(media.get("id"))
        if not media_id:
            raise _Unreadable(f"{kind} has no id")
        attachment = Attachment(
            content_type=_string(media.get("mime_type")).split(";")[0].lower()
            or "application/octet-stream",
            filename=_string(media.get("filename")) or None,
            url=f"{MEDIA_PREFIX}{media_id}",
        )
        return _Content(text=_string(media.get("caption")), attachments=(attachment,))

    return read


def _coordinate(value: Any, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and abs(number) <= bound else None


def _location(message: Mapping[str, Any]) -> _Content:
    place = _object(message.get("location"), "location")
    lat = _coordinate(place.get("latitude"), 90)
    lon = _coordinate(place.get("longitude"), 180)
    if lat is None or lon is None:
        lat = lon = None  # kept in the raw payload; a half position is no position
    location = Location(
        lat=lat,
        lon=lon,
        address=_string(place.get("address")) or None,
        label=_string(place.get("name")) or None,
    )
    return _Content(location=None if location.is_empty() else location)


def _interactive(message: Mapping[str, Any]) -> _Content:
    interactive = _object(message.get("interactive"), "interactive")
    for kind in ("button_reply", "list_reply"):
        reply = interactive.get(kind)
        if isinstance(reply, Mapping):
            return _Content(text=_string(reply.get("title")))
    reply = interactive.get("nfm_reply")
    if isinstance(reply, Mapping):
        return _Content(text=_string(reply.get("body")))
    return _Content()


def _text(message: Mapping[str, Any]) -> _Content:
    return _Content(text=_string(_object(message.get("text"), "text").get("body")))


def _button(message: Mapping[str, Any]) -> _Content:
    return _Content(text=_string(_object(message.get("button"), "button").get("text")))


_CONTENT: dict[str, Callable[[Mapping[str, Any]], _Content]] = {
    "text": _text,
    "location": _location,
    "interactive": _interactive,
    "button": _button,
    **{kind: _media(kind) for kind in MEDIA_TYPES},
}


def _received_at(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


class MetaAdapter:
    """WhatsApp Cloud API webhooks: messages become complaints, statuses become receipts."""

    name: ClassVar[str] = "meta"

    def handshake(self, query: Mapping[str, str], verify_token: str) -> str:
        """The challenge to echo when Meta subscribes the webhook with our verify token."""
        given = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            given.encode(), verify_token.encode()
        ):
            raise ChannelError(403, "bad_verify_token", "The verify token does not match.")
        challenge = query.get("hub.challenge", "")
        if not challenge or len(challenge) > 256:
            raise ChannelError(400, "required", "'hub.challenge' is required.", "hub.challenge")
        return challenge

    def verify(self, request: RawRequest, app_secret: str) -> None:
        header = request.header(SIGNATURE_HEADER) or ""
        scheme, _, given = header.partition("=")
        if scheme != "sha256" or not given:
            raise ChannelError(
                403, "missing_signature", f"The {SIGNATURE_HEADER} header is missing."
            )
        expected = hmac.new(app_secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
            raise ChannelError(
                403,
                "bad_signature",
                f"The {SIGNATURE_HEADER} does not match the body; check ADUAN_META_APP_SECRET.",
            )

    def parse(self, request: RawRequest) -> list[InboundMessage]:
        return self.notifications(request).messages

    def notifications(self, request: RawRequest) -> Notifications:
        payload = self._payload(request)
        messages: list[InboundMessage] = []
        receipts: list[Receipt] = []
        ignored = skipped = 0
        for entry in payload["entry"]:
            changes = entry.get("changes") if isinstance(entry, Mapping) else None
            for change in changes if isinstance(changes, list) else []:
                if not isinstance(change, Mapping) or change.get("field") != "messages":
                    continue  # account, template and quality updates are not ours to handle
                value = change.get("value")
                if not isinstance(value, Mapping):
                    skipped += 1
                    continue
                names = self._names(value.get("contacts"))
                metadata = value.get("metadata")
                if not isinstance(metadata, Mapping):
                    metadata = {}
                for message in self._list(value.get("messages")):
                    try:
                        kind = _string(_object(message, "message").get("type"))
                        if kind in IGNORED_TYPES:
                            log.info("ignored a WhatsApp %s notification", kind)
                            ignored += 1
                            continue
                        messages.append(self._message(message, kind, names, metadata))
                    except _Unreadable as exc:
                        log.warning("skipped an unreadable WhatsApp message: %s", exc)
                        skipped += 1
                for status in self._list(value.get("statuses")):
                    try:
                        receipts.append(self._receipt(status))
                    except _Unreadable as exc:
                        log.warning("skipped an unreadable WhatsApp status: %s", exc)
                        skipped += 1
        if skipped and not messages and not receipts:
            raise ChannelError(400, "invalid_body", "No message or status in it could be read.")
        return Notifications(messages, receipts, ignored, skipped)

    def _payload(self, request: RawRequest) -> Mapping[str, Any]:
        try:
            payload = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ChannelError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None
        if not isinstance(payload, Mapping):
            raise ChannelError(400, "invalid_body", "The body must be a JSON object.")
        if payload.get("object") != "whatsapp_business_account":
            raise ChannelError(
                400,
                "invalid_body",
                "'object' must be 'whatsapp_business_account'.",
                "object",
            )
        if not isinstance(payload.get("entry"), list):
            raise ChannelError(400, "invalid_body", "'entry' must be a list.", "entry")
        return payload

    @staticmethod
    def _list(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    def _names(self, contacts: Any) -> dict[str, str]:
        names: dict[str, str] = {}
        for contact in self._list(contacts):
            if not isinstance(contact, Mapping):
                continue
            profile = contact.get("profile")
            name = _string(profile.get("name")) if isinstance(profile, Mapping) else ""
            wa_id = _string(contact.get("wa_id"))
            if wa_id and name:
                names[wa_id] = name
        return names

    def _message(
        self,
        message: Mapping[str, Any],
        kind: str,
        names: Mapping[str, str],
        metadata: Mapping[str, Any],
    ) -> InboundMessage:
        wamid = _string(message.get("id"))
        if not wamid:
            raise _Unreadable("a message has no id")
        sender = _string(message.get("from"))
        if not sender.isdigit():
            # Users with a WhatsApp username may come with a business-scoped user id
            # only; without a phone number there is no reporter aduan can answer yet.
            raise _Unreadable(f"{kind or 'a'} message has no phone number in 'from'")
        reader = _CONTENT.get(kind)
        content = reader(message) if reader is not None else _Content()  # kept raw
        context = message.get("context")
        replied = _string(context.get("id")) if isinstance(context, Mapping) else ""
        return InboundMessage(
            channel="whatsapp",
            provider="meta",
            provider_message_id=wamid,
            sender="+" + sender,  # Meta gives the number in E.164 without its '+'
            sender_name=names.get(sender),
            recipient=_string(metadata.get("display_phone_number"))
            or _string(metadata.get("phone_number_id"))
            or None,
            received_at=_received_at(message.get("timestamp")),
            text=content.text,
            attachments=content.attachments,
            location=content.location,
            reply_to=(replied,) if replied else (),
            raw={
                "type": kind,
                "message": dict(message),
                "phone_number_id": _string(metadata.get("phone_number_id")) or None,
                "supported": reader is not None,
            },
        )

    def _receipt(self, status: Any) -> Receipt:
        status = _object(status, "status")
        wamid = _string(status.get("id"))
        state = _string(status.get("status")).lower()
        if not wamid or not state:
            raise _Unreadable("a status has no id or status")
        error = None
        errors = status.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            first = errors[0]
            error = f"meta {first.get('code', '?')}: {_string(first.get('title'))}".strip()
        return Receipt("meta", wamid, state, error)
