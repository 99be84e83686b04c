"""The contract every channel adapter fulfils, and the message it produces.

Adapters turn a provider's request into `InboundMessage`s. They never import the
aiohttp app, the queue or the database: the gateway hands them a `RawRequest`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

ChannelName = Literal["sms", "whatsapp", "email", "web", "api"]
ProviderName = Literal["twilio", "meta", "smtp", "web"]
CHANNELS: tuple[str, ...] = ("sms", "whatsapp", "email", "web", "api")


class ChannelError(Exception):
    """Input a provider or a person sent that we refuse, with the HTTP status to answer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


@dataclass(frozen=True)
class Location:
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    label: str | None = None

    def is_empty(self) -> bool:
        return self.lat is None and self.lon is None and not self.address and not self.label


@dataclass(frozen=True)
class Attachment:
    content_type: str
    size: int | None = None
    filename: str | None = None
    url: str | None = None
    data_b64: str | None = None
    sha256: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, content_type: str, filename: str | None) -> Attachment:
        return cls(
            content_type=content_type,
            size=len(data),
            filename=filename,
            data_b64=base64.b64encode(data).decode("ascii"),
            sha256=hashlib.sha256(data).hexdigest(),
        )

    def data(self) -> bytes | None:
        return None if self.data_b64 is None else base64.b64decode(self.data_b64)


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    provider: str
    provider_message_id: str
    sender: str
    text: str
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    alt_sender: str | None = None
    sender_name: str | None = None
    recipient: str | None = None
    subject: str | None = None
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None
    reply_to: tuple[str, ...] = ()
    topic_hint: str | None = None
    language_hint: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["received_at"] = self.received_at.isoformat()
        return data


@dataclass(frozen=True)
class UploadedFile:
    field_name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class RawRequest:
    """What the gateway hands an adapter: plain data, no framework objects."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    form: Mapping[str, Sequence[str]] = field(default_factory=dict)
    files: Sequence[UploadedFile] = ()
    json: Any = None
    remote: str | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


class InboundAdapter(Protocol):
    """A channel: turns one provider request into the messages it carries."""

    name: ClassVar[str]

    def parse(self, request: RawRequest) -> list[InboundMessage]: ...


_REGISTRY: dict[str, InboundAdapter] = {}


def register(adapter: InboundAdapter) -> InboundAdapter:
    if adapter.name in _REGISTRY:
        raise ValueError(f"Channel adapter '{adapter.name}' is registered twice.")
    _REGISTRY[adapter.name] = adapter
    return adapter


def adapter(name: str) -> InboundAdapter:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"No channel adapter named '{name}'; known: {sorted(_REGISTRY)}") from None


def adapters() -> Mapping[str, InboundAdapter]:
    return dict(_REGISTRY)
