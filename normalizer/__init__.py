"""Pure functions from `InboundMessage` to `Complaint`: no I/O, no clock, no settings reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from channels.base import InboundMessage
from normalizer.commands import parse_command
from normalizer.complaint import Complaint, Reporter
from normalizer.language import guess_language
from normalizer.redact import redact_identity
from normalizer.reporter import InvalidContact, reporter_for
from normalizer.text import clean_text, fingerprint, title_of
from normalizer.tickets import find_ticket
from normalizer.topics import Taxonomy, classify, mentions_confidential_marker

__all__ = ["Complaint", "InvalidContact", "Reporter", "Rules", "idempotency_key", "normalize"]


@dataclass(frozen=True)
class Rules:
    taxonomy: Taxonomy
    ticket_prefix: str = "BGR"
    default_region: str = "ID"
    default_language: str = "id"


def idempotency_key(channel: str, provider: str, provider_message_id: str) -> str:
    """Stable across retries of one message; safe as an RQ job id and a Redis key."""
    digest = hashlib.sha256(f"{channel}\x1f{provider}\x1f{provider_message_id}".encode())
    return digest.hexdigest()[:40]


def normalize(message: InboundMessage, rules: Rules) -> Complaint:
    reporter = reporter_for(
        message.channel,
        message.sender,
        message.alt_sender,
        message.sender_name,
        rules.default_region,
    )
    declared = message.raw.get("content_type")
    is_html = {"text/html": True, "text/plain": False}.get(declared) if declared else None
    text = clean_text(message.text, is_html=is_html, strip_history=message.channel == "email")
    command, rest = parse_command(text)
    subject = clean_text(message.subject) if message.subject else None
    # Subject and text, for what is read from their words (one string, so the words are
    # taken once: `words` remembers the last few texts).
    about = f"{subject}\n{text}" if subject else text
    ticket = find_ticket(rest if command else about, rules.ticket_prefix)
    classification = classify(about, rules.taxonomy)
    topic = classification.topic
    if message.topic_hint and message.topic_hint in rules.taxonomy.codes:
        topic = message.topic_hint
    confidential = (
        rules.taxonomy.is_confidential(topic)
        or rules.taxonomy.is_confidential(classification.topic)
        or mentions_confidential_marker(about, rules.taxonomy)
    )
    language = message.language_hint if message.language_hint in ("id", "en") else None
    if confidential:
        text = redact_identity(text, reporter)
        subject = redact_identity(subject, reporter) if subject else subject
    return Complaint(
        idempotency_key=idempotency_key(
            message.channel, message.provider, message.provider_message_id
        ),
        channel=message.channel,
        provider=message.provider,
        provider_message_id=message.provider_message_id,
        reporter=reporter,
        text=text,
        title=title_of(subject or text) if (subject or text) else "",
        language=language or guess_language(about, rules.default_language),
        topic=topic,
        topic_keywords=classification.keywords,
        confidential=confidential,
        fingerprint=fingerprint(text),
        received_at=message.received_at,
        location=message.location,
        ticket_ref=None if ticket is None else ticket.canonical,
        ticket_ref_valid=True if ticket is None else ticket.valid,
        command=command,
        attachments=message.attachments,
        subject=subject,
        recipient=message.recipient,
        reply_to=message.reply_to,
        raw=dict(message.raw),
    )
