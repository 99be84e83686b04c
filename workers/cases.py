"""Operators moving cases along: status, replies, topic, merge and unlink, each audited.

Each function works inside the caller's transaction and returns the ids of the
deliveries to enqueue (`workers.replies.enqueue_deliveries`) once it has committed.
Confidential reporters are opened here only by `reveal`, for an integrity officer,
and only after the audit row saying who, when and why is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from config.data import Replies
from workers import models
from workers.crypto import Crypto
from workers.store import REPLY_CHANNEL

log = logging.getLogger("aduan.cases")

# The moves a reporter hears about on their own channel; the others are internal.
NOTIFIED = frozenset({"verified", "dispatched", "in_progress", "resolved", "rejected"})
# Leaving one of these is reopening a case: a supervisor's decision.
TERMINAL = frozenset({"closed", "rejected", "merged"})
SETTABLE = tuple(s for s in models.STATUSES if s != "merged")  # merging has its own action
# The usual next step, offered first.
NEXT = {
    "received": "verified",
    "verified": "dispatched",
    "dispatched": "in_progress",
    "in_progress": "resolved",
    "resolved": "closed",
}
REPLY_LIMIT = 1600  # what one Twilio message carries
REASON_MIN = 8


@dataclass(frozen=True)
class Actor:
    username: str
    role: str
    operator_id: int | None = None


class CaseActionError(Exception):
    """An action that cannot be done as asked; `code` names why, for the operator's language."""

    def __init__(self, code: str, status: int = 400, **values: str) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.values = values


def audit(
    session: Session,
    actor: Actor,
    action: str,
    case_id: int | None = None,
    note: str | None = None,
    detail: dict[str, object] | None = None,
) -> models.AuditEvent:
    event = models.AuditEvent(
        case_id=case_id,
        operator_id=actor.operator_id,
        actor=actor.username,
        action=action,
        note=note,
        detail=detail,
    )
    session.add(event)
    session.flush()
    return event


def _case(session: Session, case_id: int, *, lock: bool = True) -> models.Case:
    # FOR UPDATE on PostgreSQL: two operators acting at once take turns. SQLite has one
    # writer at a time anyway and ignores it.
    case = session.get(models.Case, case_id, with_for_update=lock)
    if case is None:
        raise CaseActionError("not_found", 404)
    return case


def reply_channel(case: models.Case, reporter: models.Reporter) -> str | None:
    """The reporter's own channel; the web form and the app reach them by SMS or email."""
    channel = REPLY_CHANNEL.get(case.channel)
    if channel is not None:
        return channel
    return {"phone": "sms", "email": "email"}.get(reporter.kind)


def _last_email_id(session: Session, case: models.Case) -> str | None:
    raw = session.scalar(
        select(models.Message.raw)
        .where(
            models.Message.case_id == case.id,
            models.Message.direction == "in",
            models.Message.channel == "email",
        )
        .order_by(models.Message.id.desc())
        .limit(1)
    )
    value = raw.get("message_id") if isinstance(raw, dict) else None
    return str(value) if value else None


def _delivery(
    session: Session,
    replies: Replies,
    case: models.Case,
    kind: str,
    body: str,
    dedupe_key: str,
) -> models.Delivery | None:
    reporter = session.get_one(models.Reporter, case.reporter_id)
    channel = reply_channel(case, reporter)
    if channel is None or reporter.opted_out:
        return None
    subject = None
    if channel == "email":
        subject = "Re: " + replies.render(case.language, "email_subject", ticket=case.ticket)
    delivery = models.Delivery(
        dedupe_key=dedupe_key,
        case_id=case.id,
        reporter_id=reporter.id,
        channel=channel,
        kind=kind,
        language=case.language,
        subject=subject,
        body=body,
        sealed=False,
        in_reply_to=_last_email_id(session, case) if channel == "email" else None,
        status="queued",
    )
    session.add(delivery)
    session.flush()
    return delivery


def _merged_into(session: Session, case_id: int) -> list[models.Case]:
    return list(
        session.scalars(
            select(models.Case)
            .join(models.CaseLink, models.CaseLink.case_id == models.Case.id)
            .where(models.CaseLink.into_case_id == case_id)
            .order_by(models.Case.id)
        )
    )


def change_status(
    session: Session,
    replies: Replies,
    case_id: int,
    actor: Actor,
    to_status: str,
    note: str | None,
    *,
    expected: str | None = None,
    may_reopen: bool = False,
) -> tuple[models.StatusEvent, list[int]]:
    """Move a case and tell its reporter (and the reporters of cases merged into it)."""
    note = (note or "").strip() or None
    if to_status not in SETTABLE:
        raise CaseActionError("bad_status")
    case = _case(session, case_id)
    if expected is not None and case.status != expected:
        raise CaseActionError("stale", 409, current=case.status)
    if case.status == to_status:
        raise CaseActionError("same_status")
    if case.status in TERMINAL and not may_reopen:
        raise CaseActionError("reopen_forbidden", 403)
    if to_status == "rejected" and note is None:
        raise CaseActionError("note_required")
    if case.status == "merged":
        # Reopening a merged case undoes the merge.
        session.execute(delete(models.CaseLink).where(models.CaseLink.case_id == case.id))
    event = models.StatusEvent(
        case_id=case.id,
        actor=actor.username,
        from_status=case.status,
        to_status=to_status,
        note=note,
    )
    case.status = to_status
    case.updated_at = datetime.now(UTC)
    session.add(event)
    session.flush()
    ids: list[int] = []
    if to_status in NOTIFIED:
        for told in [case, *_merged_into(session, case.id)]:
            body = replies.render(
                told.language,
                "status_changed",
                ticket=told.ticket,
                status=replies.status_name(told.language, to_status),
            )
            delivery = _delivery(
                session, replies, told, "status_changed", body, f"status:{told.id}:{event.id}"
            )
            if delivery is not None:
                ids.append(delivery.id)
    log.info("%s moved %s to %s", actor.username, case.ticket, to_status)
    return event, ids


def reply(
    session: Session, replies: Replies, case_id: int, actor: Actor, text: str
) -> tuple[models.AuditEvent, int]:
    """A free-text answer from an operator, on the reporter's channel."""
    text = text.strip()
    if not text:
        raise CaseActionError("reply_empty")
    if len(text) > REPLY_LIMIT:
        raise CaseActionError("reply_too_long", limit=str(REPLY_LIMIT))
    case = _case(session, case_id)
    event = audit(session, actor, "reply", case.id)
    delivery = _delivery(
        session, replies, case, "operator_reply", text, f"reply:{case.id}:{event.id}"
    )
    if delivery is None:
        raise CaseActionError("no_channel")
    event.detail = {"delivery_id": delivery.id}
    case.updated_at = datetime.now(UTC)
    log.info("%s replied on %s", actor.username, case.ticket)
    return event, delivery.id


def reassign_topic(
    session: Session,
    topics: frozenset[str],
    case_id: int,
    actor: Actor,
    topic: str,
    note: str | None,
) -> models.AuditEvent:
    """A new topic; confidentiality stays as it was: a hidden reporter is never un-hidden."""
    if topic not in topics:
        raise CaseActionError("bad_topic")
    case = _case(session, case_id)
    if case.topic == topic:
        raise CaseActionError("same_topic")
    event = audit(
        session,
        actor,
        "topic",
        case.id,
        (note or "").strip() or None,
        {"from": case.topic, "to": topic},
    )
    case.topic = topic
    case.updated_at = datetime.now(UTC)
    return event


def merge(
    session: Session, case_id: int, actor: Actor, into_ticket: str, note: str | None
) -> models.Case:
    """Mark a case a duplicate of another (the incident); its own reports move along."""
    note = (note or "").strip() or None
    case = _case(session, case_id)
    target = session.scalar(
        select(models.Case).where(models.Case.ticket == into_ticket.strip().upper())
    )
    if target is None:
        raise CaseActionError("merge_target_not_found", ticket=into_ticket.strip())
    if target.id == case.id:
        raise CaseActionError("merge_into_itself")
    if case.status == "merged":
        raise CaseActionError("already_merged")
    if target.status == "merged":
        raise CaseActionError("merge_target_merged", ticket=target.ticket)
    session.execute(
        update(models.CaseLink)
        .where(models.CaseLink.into_case_id == case.id)
        .values(into_case_id=target.id)
    )
    # An automatic incident link (actor "system") gives way to the operator's merge.
    session.execute(delete(models.CaseLink).where(models.CaseLink.case_id == case.id))
    session.add(models.CaseLink(case_id=case.id, into_case_id=target.id, actor=actor.username))
    session.add(
        models.StatusEvent(
            case_id=case.id,
            actor=actor.username,
            from_status=case.status,
            to_status="merged",
            note=f"→ {target.ticket}" + (f": {note}" if note else ""),
        )
    )
    case.status = "merged"
    case.updated_at = datetime.now(UTC)
    audit(session, actor, "merge_in", target.id, note, {"ticket": case.ticket})
    session.flush()
    return target


def unlink(session: Session, case_id: int, actor: Actor, note: str | None) -> models.Case:
    """Undo a merge: the case stands alone again, in the status it had before."""
    note = (note or "").strip() or None
    case = _case(session, case_id)
    link = session.scalar(select(models.CaseLink).where(models.CaseLink.case_id == case.id))
    if link is None:
        raise CaseActionError("not_linked")
    target = session.get_one(models.Case, link.into_case_id)
    before = session.scalar(
        select(models.StatusEvent.from_status)
        .where(models.StatusEvent.case_id == case.id, models.StatusEvent.to_status == "merged")
        .order_by(models.StatusEvent.id.desc())
        .limit(1)
    )
    restored = before if before in SETTABLE else "received"
    session.delete(link)
    if case.status == "merged":
        session.add(
            models.StatusEvent(
                case_id=case.id,
                actor=actor.username,
                from_status=case.status,
                to_status=restored,
                note=f"✂ {target.ticket}" + (f": {note}" if note else ""),
            )
        )
        case.status = restored
    case.updated_at = datetime.now(UTC)
    audit(session, actor, "unlink", target.id, note, {"ticket": case.ticket})
    session.flush()
    return case


def reveal(
    session: Session, crypto: Crypto, case_id: int, actor: Actor, reason: str
) -> dict[str, Any]:
    """A confidential reporter's contact details, for an integrity officer who said why."""
    if actor.role != "integrity":
        raise CaseActionError("forbidden", 403)
    reason = reason.strip()
    if len(reason) < REASON_MIN:
        raise CaseActionError("reason_required", min=str(REASON_MIN))
    case = _case(session, case_id, lock=False)
    reporter = session.get_one(models.Reporter, case.reporter_id)
    if not case.confidential or not reporter.sealed_contact:
        raise CaseActionError("not_confidential")
    audit(session, actor, "reveal", case.id, reason)
    log.info("%s revealed the reporter of %s", actor.username, case.ticket)
    contact = crypto.open(reporter.sealed_contact)
    return {k: contact.get(k) for k in ("name", "address", "email")}


def sla_due(created_at: datetime, working_days: int, zone: ZoneInfo) -> datetime:
    """When a case received at `created_at` must be verified: that many working days
    (Monday to Friday, in the city's time zone) later. Public holidays are not known."""
    moment = as_utc(created_at).astimezone(zone)
    counted = 0
    while counted < working_days:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            counted += 1
    return moment.astimezone(UTC)


def is_overdue(case: models.Case, now: datetime, working_days: int, zone: ZoneInfo) -> bool:
    return case.status == "received" and now > sla_due(case.created_at, working_days, zone)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; aduan only ever stores UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
