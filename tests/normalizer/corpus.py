"""Helpers shared by the normalizer tests: the topic corpus and message factories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channels.base import InboundMessage

TESTDATA = Path(__file__).parent / "testdata"


@dataclass(frozen=True)
class Sample:
    topic: str
    language: str
    text: str


def load_topic_corpus() -> list[Sample]:
    """The complaints in testdata/topics.tsv: `topic<TAB>language<TAB>text` a line."""
    samples = []
    lines = (TESTDATA / "topics.tsv").read_text("utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[1] not in ("id", "en") or not fields[2].strip():
            raise ValueError(f"topics.tsv:{number}: expected 'topic<TAB>id|en<TAB>text'")
        samples.append(Sample(fields[0].strip(), fields[1], fields[2].strip()))
    return samples


def message(text: str, **overrides: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "channel": "sms",
        "provider": "twilio",
        "provider_message_id": "SM0001",
        "sender": "+6281234567890",
        "text": text,
        "received_at": datetime(2026, 3, 2, 8, 30, tzinfo=UTC),
    }
    values.update(overrides)
    return InboundMessage(**values)
