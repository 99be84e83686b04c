"""The web form and the mobile app's JSON API: both are the city's own provider."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from channels.base import Attachment, ChannelError, InboundMessage, Location, RawRequest

MAX_TEXT_CHARS = 5000
MAX_NAME_CHARS = 200
MAX_FIELD_CHARS = 500
MAX_PHOTOS = 3
MAX_PHOTO_BYTES = 10 * 1024 * 1024

_IMAGE_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"ftypheic", 4, "image/heic"),
    (b"ftypheix", 4, "image/heic"),
    (b"ftypmif1", 4, "image/heif"),
)


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes really are, whatever the upload claimed."""
    for magic, offset, content_type in _IMAGE_SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            if content_type == "image/webp" and not data.startswith(b"RIFF"):
                continue
            return content_type
    return None


def _text(value: Any, field: str, limit: int, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ChannelError(400, "required", f"'{field}' is required.", field)
        return None
    if not isinstance(value, str):
        raise ChannelError(400, "invalid", f"'{field}' must be a string.", field)
    value = value.strip()
    if not value:
        if required:
            raise ChannelError(400, "required", f"'{field}' must not be empty.", field)
        return None
    if len(value) > limit:
        raise ChannelError(
            413 if field == "text" else 400,
            "too_long",
            f"'{field}' is {len(value)} characters; at most {limit} are accepted.",
            field,
        )
    return str(value)


def _coordinate(value: Any, field: str, bound: float) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ChannelError(400, "invalid", f"'{field}' must be a number.", field)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ChannelError(400, "invalid", f"'{field}' must be a number.", field) from None
    if not math.isfinite(number) or abs(number) > bound:
        raise ChannelError(
            400, "out_of_range", f"'{field}' must be between -{bound:g} and {bound:g}.", field
        )
    return number


def _location(lat: Any, lon: Any, address: Any, prefix: str) -> Location | None:
    lat_value = _coordinate(lat, f"{prefix}lat", 90)
    lon_value = _coordinate(lon, f"{prefix}lon", 180)
    if (lat_value is None) != (lon_value is None):
        missing = "lon" if lon_value is None else "lat"
        raise ChannelError(
            400, "required", "Give both latitude and longitude, or neither.", f"{prefix}{missing}"
        )
    location = Location(
        lat=lat_value, lon=lon_value, address=_text(address, f"{prefix}address", MAX_FIELD_CHARS)
    )
    return None if location.is_empty() else location


class WebAdapter:
    """Turns a form post or an API call into one `InboundMessage`."""

    name: ClassVar[str] = "web"

    def parse(self, request: RawRequest) -> list[InboundMessage]:
        if request.json is not None:
            return [self._from_json(request)]
        return [self._from_form(request)]

    def _from_json(self, request: RawRequest) -> InboundMessage:
        body = request.json
        if not isinstance(body, Mapping):
            raise ChannelError(400, "invalid_body", "The body must be a JSON object.")
        location_value = body.get("location")
        if location_value is not None and not isinstance(location_value, Mapping):
            raise ChannelError(400, "invalid", "'location' must be an object.", "location")
        location = None
        if location_value:
            location = _location(
                location_value.get("lat"),
                location_value.get("lon"),
                location_value.get("address"),
                "location.",
            )
        return self._message(
            request,
            channel="api",
            fields={key: body.get(key) for key in ("text", "name", "phone", "email", "topic")},
            location=location,
            attachments=(),
        )

    def _from_form(self, request: RawRequest) -> InboundMessage:
        location = _location(
            request.field("lat"), request.field("lon"), request.field("address"), ""
        )
        photos = [f for f in request.files if f.field_name == "photo" and f.data]
        if len(photos) > MAX_PHOTOS:
            raise ChannelError(
                400, "too_many", f"At most {MAX_PHOTOS} photos can be attached.", "photo"
            )
        attachments = []
        for photo in photos:
            if len(photo.data) > MAX_PHOTO_BYTES:
                raise ChannelError(
                    413,
                    "too_large",
                    f"A photo may be at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB.",
                    "photo",
                )
            sniffed = sniff_image(photo.data)
            if sniffed is None:
                raise ChannelError(
                    415,
                    "not_an_image",
                    f"'{photo.filename or 'photo'}' is not a JPEG, PNG, GIF, WebP or HEIC image.",
                    "photo",
                )
            attachments.append(Attachment.from_bytes(photo.data, sniffed, photo.filename))
        channel = "web" if request.field("form_token") is not None else "api"
        return self._message(
            request,
            channel=channel,
            fields={key: request.field(key) for key in ("text", "name", "phone", "email", "topic")},
            location=location,
            attachments=tuple(attachments),
        )

    def _message(
        self,
        request: RawRequest,
        channel: str,
        fields: Mapping[str, Any],
        location: Location | None,
        attachments: tuple[Attachment, ...],
    ) -> InboundMessage:
        text = _text(fields["text"], "text", MAX_TEXT_CHARS, required=True)
        assert text is not None
        name = _text(fields.get("name"), "name", MAX_NAME_CHARS)
        phone = _text(fields.get("phone"), "phone", 40)
        email = _text(fields.get("email"), "email", 254)
        topic = _text(fields.get("topic"), "topic", 64)
        key = request.header("Idempotency-Key") or request.field("form_token") or uuid.uuid4().hex
        if len(key) > 255:
            raise ChannelError(
                400,
                "invalid",
                "The Idempotency-Key may be at most 255 characters.",
                "Idempotency-Key",
            )
        sender = phone or email or ""
        return InboundMessage(
            channel=channel,
            provider="web",
            provider_message_id=key,
            sender=sender,
            alt_sender=email if phone and email else None,
            sender_name=name,
            text=text,
            attachments=attachments,
            location=location,
            topic_hint=None if topic in (None, "auto") else topic,
            language_hint=request.field("lang"),
            raw={
                "fields": {k: v for k, v in fields.items() if v is not None},
                "location": None if location is None else location.__dict__,
                "photos": [a.filename for a in attachments],
            },
        )
