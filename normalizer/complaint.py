"""`Complaint`: what the queue carries, one schema for every channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.base import Attachment, Location

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Reporter:
    kind: str  # "phone", "email" or "web"
    address: str | None
    name: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Complaint:
    idempotency_key: str
    channel: str
    provider: str
    provider_message_id: str
    reporter: Reporter
    text: str
    title: str
    language: str
    topic: str
    topic_keywords: tuple[str, ...]
    confidential: bool
    fingerprint: str
    received_at: datetime
    location: Location | None = None
    ticket_ref: str | None = None
    ticket_ref_valid: bool = True
    command: str | None = None
    attachments: tuple[Attachment, ...] = ()
    subject: str | None = None
    recipient: str | None = None
    reply_to: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values. Built from the instances' own dicts: `dataclasses.asdict`
        deep-copies everything (the raw provider payload too) and was a tenth of a webhook's
        time. Every field of these dataclasses is in their `__dict__` (no slots, no extra
        attributes), and those of Reporter, Location and Attachment are plain values."""
        data = dict(vars(self))
        data["reporter"] = dict(vars(self.reporter))
        data["location"] = None if self.location is None else dict(vars(self.location))
        data["attachments"] = [dict(vars(a)) for a in self.attachments]
        data["topic_keywords"] = list(self.topic_keywords)
        data["reply_to"] = list(self.reply_to)
        data["raw"] = dict(self.raw)
        data["received_at"] = self.received_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Complaint:
        if data.get("version") != SCHEMA_VERSION:
            raise ValueError(
                f"Complaint schema version {data.get('version')!r} is not {SCHEMA_VERSION}."
            )
        values = dict(data)
        values["reporter"] = Reporter(**values["reporter"])
        values["received_at"] = datetime.fromisoformat(values["received_at"])
        values["location"] = None if values["location"] is None else Location(**values["location"])
        values["attachments"] = tuple(Attachment(**a) for a in values["attachments"])
        values["topic_keywords"] = tuple(values["topic_keywords"])
        values["reply_to"] = tuple(values["reply_to"])
        return cls(**values)
