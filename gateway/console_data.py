"""What the console reads from the case store, as plain data ready for a template.

This module never opens a sealed contact: a confidential reporter is shown as
"Pelapor dirahasiakan" to everyone, whatever their role. Revealing one is
`workers.cases.reveal`, audited, and rendered only in the response to that request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from config.data import Replies
from normalizer.topics import Taxonomy
from workers import models
from workers.cases import as_utc, is_overdue, sla_due

CHANNELS = ("sms", "whatsapp", "email", "web", "api")
PAGE_SIZE = 50
DASHBOARD_DAYS = 14
OUTBOX_STATUSES = ("outbox", "queued", "failed")


@dataclass(frozen=True)
class View:
    """How to show things to this operator: language, time zone, names, the SLA."""

    lang: str
    strings: Mapping[str, str]
    taxonomy: Taxonomy
    replies: Replies
    zone: ZoneInfo
    sla_days: int
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def topic_name(self, code: str) -> str:
        topic = self.taxonomy.get(code)
        return topic.names.get(self.lang, code) if topic else code

    def status_name(self, status: str) -> str:
        return self.replies.status_name(self.lang, status)

    def local(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return as_utc(moment).astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def reporter(self, case: models.Case | None, reporter: models.Reporter | None) -> str:
        if reporter is None:
            return self.strings["reporter_unknown"]
        if reporter.confidential or (case is not None and case.confidential):
            return self.strings["reporter_hidden"]
        seen: list[str] = []
        for part in (reporter.name, reporter.address, reporter.email):
            if part and part not in seen:
                seen.append(part)
        return " · ".join(seen) or self.strings["reporter_anonymous"]


@dataclass(frozen=True)
class Filters:
    channel: str = ""
    topic: str = ""
    status: str = ""
    confidential: str = ""  # "", "yes", "no"
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""

    @classmethod
    def parse(cls, query: Mapping[str, str], taxonomy: Taxonomy) -> Filters:
        def pick(name: str, allowed: tuple[str, ...] | frozenset[str]) -> str:
            value = query.get(name, "")
            return value if value in allowed else ""

        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(query.get(name, ""))
            except ValueError:
                return None

        return cls(
            channel=pick("channel", CHANNELS),
            topic=pick("topic", taxonomy.codes),
            status=pick("status", models.STATUSES),
            confidential=pick("confidential", ("yes", "no")),
            date_from=day("from"),
            date_to=day("to"),
            q=query.get("q", "").strip()[:200],
        )

    def query(self) -> dict[str, str]:
        """The filters as query parameters, for links that keep them."""
        values = {
            "channel": self.channel,
            "topic": self.topic,
            "status": self.status,
            "confidential": self.confidential,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "q": self.q,
        }
        return {k: v for k, v in values.items() if v}

    def conditions(self, zone: ZoneInfo) -> list[ColumnElement[bool]]:
        case = models.Case
        where: list[ColumnElement[bool]] = []
        if self.channel:
            where.append(case.channel == self.channel)
        if self.topic:
            where.append(case.topic == self.topic)
        if self.status:
            where.append(case.status == self.status)
        if self.confidential:
            where.append(case.confidential.is_(self.confidential == "yes"))
        if self.date_from:
            start = datetime.combine(self.date_from, time(), zone).astimezone(UTC)
            where.append(case.created_at >= start)
        if self.date_to:
            end = datetime.combine(self.date_to + timedelta(days=1), time(), zone)
            where.append(case.created_at < end.astimezone(UTC))
        if self.q:
            in_messages = exists().where(
                models.Message.case_id == case.id,
                models.Message.text.icontains(self.q, autoescape=True),
            )
            where.append(
                or_(
                    case.title.icontains(self.q, autoescape=True),
                    case.ticket.icontains(self.q, autoescape=True),
                    in_messages,
                )
            )
        return where


def _row(view: View, case: models.Case, reporter: models.Reporter) -> dict[str, Any]:
    return {
        "id": case.id,
        "ticket": case.ticket,
        "url": f"/console/cases/{case.id}",
        "created": view.local(case.created_at),
        "channel": case.channel,
        "topic": case.topic,
        "topic_name": view.topic_name(case.topic),
        "status": case.status,
        "status_name": view.status_name(case.status),
        "confidential": case.confidential,
        "reporter": view.reporter(case, reporter),
        "title": case.title,
        "overdue": is_overdue(case, view.now, view.sla_days, view.zone),
    }


def _cases(where: list[ColumnElement[bool]]) -> Any:  # a Select of (Case, Reporter)
    return (
        select(models.Case, models.Reporter)
        .join(models.Reporter, models.Reporter.id == models.Case.reporter_id)
        .where(and_(True, *where))
        .order_by(models.Case.created_at.desc(), models.Case.id.desc())
    )


def intake(session: Session, view: View, filters: Filters, page: int) -> dict[str, Any]:
    where = filters.conditions(view.zone)
    found = session.execute(_cases(where).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    rows = [_row(view, case, reporter) for case, reporter in found[:PAGE_SIZE]]

    def counts(column: Any) -> list[tuple[str, int]]:
        query = (
            select(column, func.count(models.Case.id))
            .where(and_(True, *where))
            .group_by(column)
            .order_by(func.count(models.Case.id).desc(), column)
        )
        return [(str(key), int(n)) for key, n in session.execute(query).all()]

    by_channel = counts(models.Case.channel)
    return {
        "rows": rows,
        "page": page,
        "has_more": len(found) > PAGE_SIZE,
        "total": sum(n for _, n in by_channel),
        "by_channel": by_channel,
        "by_topic": [(code, view.topic_name(code), n) for code, n in counts(models.Case.topic)],
    }


def intake_row(
    session: Session, view: View, filters: Filters, case_id: int
) -> dict[str, Any] | None:
    """One case for the live feed, if it passes the operator's filters."""
    found = session.execute(
        _cases([*filters.conditions(view.zone), models.Case.id == case_id])
    ).first()
    return _row(view, found[0], found[1]) if found else None


def case_detail(session: Session, view: View, case_id: int) -> dict[str, Any] | None:
    case = session.get(models.Case, case_id)
    if case is None:
        return None
    reporter = session.get_one(models.Reporter, case.reporter_id)
    sender = view.reporter(case, reporter)
    thread: list[dict[str, Any]] = []
    for message in session.scalars(
        select(models.Message).where(models.Message.case_id == case.id).order_by(models.Message.id)
    ):
        thread.append(
            {
                "direction": "in",
                "at": as_utc(message.received_at),
                "when": view.local(message.received_at),
                "channel": message.channel,
                "kind": message.kind,
                "who": sender,
                "subject": message.subject,
                "text": message.text,
                "status": None,
                "error": None,
                "attachments": [
                    {
                        "id": a.id,
                        "url": f"/console/attachments/{a.id}",
                        "content_type": a.content_type,
                        "filename": a.filename or f"lampiran-{a.id}",
                        "size": a.size,
                        "stored": a.data is not None,
                        "image": a.data is not None and a.content_type.startswith("image/"),
                    }
                    for a in message.attachments
                ],
            }
        )
    for delivery in session.scalars(
        select(models.Delivery)
        .where(models.Delivery.case_id == case.id)
        .order_by(models.Delivery.id)
    ):
        thread.append(
            {
                "direction": "out",
                "at": as_utc(delivery.created_at),
                "when": view.local(delivery.created_at),
                "channel": delivery.channel,
                "kind": delivery.kind,
                "who": view.strings.get("kind_" + delivery.kind, delivery.kind),
                "subject": delivery.subject,
                "text": view.strings["sealed_body"] if delivery.sealed else delivery.body,
                "status": delivery.status,
                "error": delivery.error,
                "attachments": [],
            }
        )
    thread.sort(key=lambda item: item["at"])

    trail: list[dict[str, Any]] = []
    for event in session.scalars(
        select(models.StatusEvent)
        .where(models.StatusEvent.case_id == case.id)
        .order_by(models.StatusEvent.id)
    ):
        trail.append(
            {
                "at": as_utc(event.created_at),
                "when": view.local(event.created_at),
                "actor": event.actor,
                "action": "status",
                "what": (
                    f"{view.status_name(event.from_status)} → {view.status_name(event.to_status)}"
                    if event.from_status
                    else view.status_name(event.to_status)
                ),
                "note": event.note,
            }
        )
    for item in session.scalars(
        select(models.AuditEvent)
        .where(models.AuditEvent.case_id == case.id)
        .order_by(models.AuditEvent.id)
    ):
        detail = item.detail or {}
        what = view.strings.get("audit_" + item.action, item.action)
        if item.action == "topic":
            what += f": {view.topic_name(str(detail.get('from')))} → "
            what += view.topic_name(str(detail.get("to")))
        elif item.action in ("merge_in", "unlink"):
            what += f": {detail.get('ticket')}"
        trail.append(
            {
                "at": as_utc(item.created_at),
                "when": view.local(item.created_at),
                "actor": item.actor,
                "action": item.action,
                "what": what,
                "note": item.note,
            }
        )
    trail.sort(key=lambda item: item["at"])

    link = session.scalar(select(models.CaseLink).where(models.CaseLink.case_id == case.id))
    merged_into = session.get(models.Case, link.into_case_id) if link else None
    others = session.execute(
        select(models.Case, models.Reporter)
        .join(models.CaseLink, models.CaseLink.case_id == models.Case.id)
        .join(models.Reporter, models.Reporter.id == models.Case.reporter_id)
        .where(models.CaseLink.into_case_id == case.id)
        .order_by(models.Case.created_at)
    ).all()
    return {
        **_row(view, case, reporter),
        "language": case.language,
        "updated": view.local(case.updated_at),
        "sla_due": view.local(sla_due(case.created_at, view.sla_days, view.zone)),
        "location": {
            "lat": case.lat,
            "lon": case.lon,
            "address": case.address,
            "label": case.location_label,
        }
        if (case.lat is not None or case.address or case.location_label)
        else None,
        "thread": thread,
        "trail": trail,
        "merged_into": {"id": merged_into.id, "ticket": merged_into.ticket}
        if merged_into
        else None,
        "merged_cases": [_row(view, c, r) for c, r in others],
        "opted_out": reporter.opted_out,
    }


def dashboard(session: Session, view: View) -> dict[str, Any]:
    today = view.now.astimezone(view.zone).date()
    first = today - timedelta(days=DASHBOARD_DAYS - 1)
    since = datetime.combine(first, time(), view.zone).astimezone(UTC)
    days = [first + timedelta(days=i) for i in range(DASHBOARD_DAYS)]
    per_day: dict[str, list[int]] = {channel: [0] * DASHBOARD_DAYS for channel in CHANNELS}
    per_topic: dict[str, int] = {}
    for created, channel, topic in session.execute(
        select(models.Case.created_at, models.Case.channel, models.Case.topic).where(
            models.Case.created_at >= since
        )
    ):
        index = (as_utc(created).astimezone(view.zone).date() - first).days
        if 0 <= index < DASHBOARD_DAYS:
            per_day.setdefault(channel, [0] * DASHBOARD_DAYS)[index] += 1
        per_topic[topic] = per_topic.get(topic, 0) + 1
    statuses = dict(
        session.execute(
            select(models.Case.status, func.count(models.Case.id)).group_by(models.Case.status)
        ).all()
    )
    return {
        "days": days,
        "per_day": per_day,
        "per_topic": sorted(
            ((view.topic_name(code), n) for code, n in per_topic.items()), key=lambda x: -x[1]
        ),
        "by_status": [(view.status_name(s), int(statuses.get(s, 0))) for s in models.STATUSES],
        "total": sum(per_topic.values()),
    }


def outbox(session: Session, view: View, status: str) -> list[dict[str, Any]]:
    found = session.execute(
        select(models.Delivery, models.Case, models.Reporter)
        .outerjoin(models.Case, models.Case.id == models.Delivery.case_id)
        .outerjoin(models.Reporter, models.Reporter.id == models.Delivery.reporter_id)
        .where(models.Delivery.status == status)
        .order_by(models.Delivery.id.desc())
        .limit(200)
    ).all()
    return [
        {
            "id": delivery.id,
            "when": view.local(delivery.created_at),
            "channel": delivery.channel,
            "kind": view.strings.get("kind_" + delivery.kind, delivery.kind),
            "to": view.reporter(case, reporter),
            "ticket": case.ticket if case else None,
            "case_url": f"/console/cases/{case.id}" if case else None,
            "text": view.strings["sealed_body"] if delivery.sealed else delivery.body,
            "error": delivery.error,
        }
        for delivery, case, reporter in found
    ]


def export_rows(session: Session, view: View, filters: Filters) -> list[list[str]]:
    """The filtered intake as a table; confidential reporters are never in it."""
    header = [
        view.strings[k]
        for k in (
            "col_ticket",
            "col_received",
            "col_channel",
            "col_topic",
            "col_status",
            "col_confidential",
            "col_reporter",
            "col_title",
            "col_address",
            "col_lat",
            "col_lon",
            "col_overdue",
        )
    ]
    rows = [header]
    for case, reporter in session.execute(_cases(filters.conditions(view.zone))).all():
        rows.append(
            [
                case.ticket,
                view.local(case.created_at),
                case.channel,
                view.topic_name(case.topic),
                view.status_name(case.status),
                view.strings["yes" if case.confidential else "no"],
                view.reporter(case, reporter),
                case.title,
                case.address or "",
                "" if case.lat is None else str(case.lat),
                "" if case.lon is None else str(case.lon),
                view.strings[
                    "yes" if is_overdue(case, view.now, view.sla_days, view.zone) else "no"
                ],
            ]
        )
    return rows
