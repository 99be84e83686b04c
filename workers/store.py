"""The store job: complaints from the queue into the case store, exactly once.

A batch is stored in one transaction. The unique idempotency key on `messages` is the
final word on duplicates: a retried job, or the same message handled by two workers at
once, finds the first one's row and answers with its ticket instead of making a second
case. Messages a retried job already stored are found by one query up front; a worker
racing us is caught by the unique key (or a deadlock on PostgreSQL), and then the batch
is stored again with each complaint in a savepoint of its own, where the loser finds
the winner's row. Savepoints cost two statements and a flush per complaint, so only
that rare retry pays for them.

Rows are made without ids and flushed together when the batch commits, so each table
gets one multi-row INSERT per batch. The rows that only point at a new case (its status
event, an incident link and its note) are not ORM objects at all: they are written with
one INSERT per table once the cases have ids (workers.grouping.RowsLater). New cases are
numbered last, just before the commit, in one statement per year: the year's ticket
counter is one row that every worker needs, locked from the moment it moves until the
commit, so it must be held for the commit only, not for the whole batch (see
`_number_tickets`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, object_session

from normalizer.complaint import Complaint
from normalizer.similarity import LinkRules
from normalizer.tickets import format_ticket, parse_ticket
from workers import models
from workers.context import RESULTS_CHANNEL, Context, current, result_key
from workers.crypto import new_receipt
from workers.db import READ_ONLY
from workers.grouping import (
    GroupingRules,
    LaterRow,
    PoolsAhead,
    RowsLater,
    catch_up_pools,
    forget_candidates,
    judge_ahead,
    link_incident,
    must_write_messages,
    open_case_of,
    read_pools_ahead,
    rows_later,
    serialize_reporters,
    use_pools,
    write_rows_later,
)
from workers.senders.smtp import delivery_of

log = logging.getLogger("aduan.store")

REPLY_CHANNEL = {"sms": "sms", "whatsapp": "whatsapp", "email": "email"}
RESULT_TTL_SECONDS = 7 * 24 * 3600
# Every kind of answer the store makes to an inbound message (`_delivery`'s `kind`).
REPLY_KINDS = (
    "received",
    "received_confidential",
    "received_followup",
    "status",
    "not_found",
    "bad_check_digit",
    "stopped",
)
# `raw["intake"]` of a message that is kept for operators but is not a complaint: a mail
# that could not be read, a delivery report. It gets no case, no reporter, no reply.
KEPT_WITHOUT_CASE = ("unparsed", "report")
# However a loop starts (two auto-responders answering each other), it ends here.
AUTO_REPLY_CAP = 5
AUTO_REPLY_WINDOW = timedelta(hours=1)


@dataclass
class Outcome:
    key: str
    ticket: str | None
    status: str | None
    outcome: str  # new, followup, duplicate, status, not_found, stop, unparsed, report
    case_id: int | None
    receipt: str | None = None
    deliveries: tuple[int, ...] = ()
    # Rows made in this transaction, whose ids are known once it is flushed (`settle`).
    case_row: models.Case | None = field(default=None, repr=False)
    delivery_rows: tuple[models.Delivery | LaterRow, ...] = field(default=(), repr=False)
    # What the log says of it, once the case has its number: (channel, topic).
    logged: tuple[str, str] | None = field(default=None, repr=False)

    def settle(self) -> None:
        """The ids of the rows this outcome made, and its case's number, once they are
        stored."""
        if self.case_row is not None:
            self.case_id = self.case_row.id
            self.ticket = self.case_row.ticket
        if self.delivery_rows:
            self.deliveries = tuple(
                d.id for d in self.delivery_rows if d.status == "queued" and d.id is not None
            )
        self.case_row, self.delivery_rows = None, ()

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "ticket": self.ticket,
            "status": self.status,
            "outcome": self.outcome,
        }
        if self.receipt:
            data["receipt"] = self.receipt
        return data


def store_complaints(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RQ job: store a batch of complaints; a batch of one is fine."""
    context = current()
    complaints = [
        Complaint.from_dict(context.crypto.open(item["sealed"]) if "sealed" in item else item)
        for item in batch
    ]
    outcomes = store(context, complaints)
    publish(context, outcomes)
    deliveries = [d for o in outcomes for d in o.deliveries]
    if deliveries:
        from workers.replies import enqueue_deliveries

        enqueue_deliveries(context, deliveries)
    from workers.media import enqueue_media

    enqueue_media(context, complaints)  # provider links to photos: fetch them while they last
    return [o.public() for o in outcomes]


# A batch that lost a race is stored again this many times at most, in savepoints.
STORE_ATTEMPTS = 3
RACE_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure


def store(context: Context, complaints: list[Complaint]) -> list[Outcome]:
    for attempt in range(STORE_ATTEMPTS - 1):
        try:
            return _store_batch(context, complaints, savepoints=attempt > 0)
        except (IntegrityError, OperationalError) as exc:
            # Another worker stored one of these messages meanwhile (the unique key), or
            # PostgreSQL chose this transaction as a deadlock's victim (two batches
            # sharing messages and reporters, locked in different orders). All of this
            # batch was rolled back: store it again, each complaint in a savepoint.
            if not _lost_a_race(exc):
                raise
            log.info("a batch lost a race with another worker (%s); again", type(exc).__name__)
    return _store_batch(context, complaints, savepoints=True)


def _lost_a_race(exc: IntegrityError | OperationalError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in RACE_SQLSTATES


def _store_batch(
    context: Context,
    complaints: list[Complaint],
    *,
    savepoints: bool,
    ahead: PoolsAhead | None = None,
) -> list[Outcome]:
    """`ahead`: the incident pools, if read already (else read here, on SQLite)."""
    outcomes: list[Outcome] = []
    if ahead is None:
        ahead = _read_pools_ahead(context, complaints)
    with context.sessions() as session, session.begin():
        if not savepoints:
            session.info["rows_later"] = RowsLater()
        if ahead is not None:
            catch_up_pools(session, ahead)
        hashes = {
            context.crypto.lookup_hash(c.reporter.address) for c in complaints if c.reporter.address
        }
        serialize_reporters(session, hashes)
        if ahead is None:  # PostgreSQL: the pools are read here, from what this worker kept
            use_pools(session, read_pools_ahead(session, complaints, _grouping_rules(context)))
        # One query for the whole batch finds the messages a retried job already stored;
        # a worker racing us is still caught by the unique key (see _store_one).
        keys = [c.idempotency_key for c in complaints]
        stored = set(
            session.scalars(
                select(models.Message.idempotency_key).where(
                    models.Message.idempotency_key.in_(keys)
                )
            )
        )
        if not savepoints:
            _read_reporters(session, hashes)
        for complaint in complaints:
            known = complaint.idempotency_key in stored
            outcomes.append(
                _store_one(context, session, complaint, known=known, savepoint=savepoints)
            )
            stored.add(complaint.idempotency_key)
        _number_tickets(context, session)
        write_rows_later(session)
    # The batch's rows were flushed together: an INSERT per table, not one per row.
    for outcome in outcomes:
        outcome.settle()
        if outcome.logged is not None:
            channel, topic = outcome.logged
            log.info(
                "stored %s message on %s as %s (%s)",
                channel,
                outcome.ticket,
                outcome.outcome,
                topic,
            )
    return outcomes


def _read_pools_ahead(context: Context, complaints: list[Complaint]) -> PoolsAhead | None:
    """On SQLite, the incident pools, read before the write lock (grouping.read_pools_ahead).
    On PostgreSQL workers store side by side anyway, and the pools are read in the write
    transaction (`_store_batch`)."""
    if context.engine.dialect.name != "sqlite":
        return None
    rules = _grouping_rules(context)
    with context.sessions() as session:
        session.connection(execution_options={READ_ONLY: True})
        ahead = read_pools_ahead(session, complaints, rules)
        if ahead.pools:
            # Their verdicts too (grouping.judge_ahead): the reporters' own cases are left
            # out by their ids, which never change once a reporter is stored.
            hashes = {
                c.idempotency_key: context.crypto.lookup_hash(c.reporter.address)
                for c in complaints
                if c.reporter.address and not c.confidential
            }
            known = dict(
                session.execute(
                    select(models.Reporter.address_hash, models.Reporter.id).where(
                        models.Reporter.address_hash.in_(set(hashes.values())),
                        models.Reporter.confidential.is_(False),
                    )
                ).all()
            )
            ids = {key: known[h] for key, h in hashes.items() if h in known}
            judge_ahead(ahead, complaints, ids, rules)
        return ahead


# A batch's results in one command: each one's key for late readers, and one message on
# the channel with all of them (a JSON list). A command and a message per result cost a
# worker a twentieth of its time, and every gateway (and its console's live feed) about as
# much to read them. KEYS are the result keys; ARGV their values, the expiry, the channel.
_PUBLISH = """
local n = #KEYS
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i], 'EX', ARGV[n + 1])
end
return redis.call('PUBLISH', ARGV[n + 2], '[' .. table.concat(ARGV, ',', 1, n) .. ']')
"""


def publish(context: Context, outcomes: list[Outcome]) -> None:
    """Tell waiting gateways: the result key for late readers, a message for those waiting."""
    if not outcomes:
        return
    keys = [result_key(outcome.key) for outcome in outcomes]
    payloads = [json.dumps(outcome.public()) for outcome in outcomes]
    context.redis.eval(_PUBLISH, len(keys), *keys, *payloads, RESULT_TTL_SECONDS, RESULTS_CHANNEL)


def _store_one(
    context: Context, session: Session, complaint: Complaint, *, known: bool, savepoint: bool
) -> Outcome:
    """`known`: the message may already be stored (a retried job, a repeat in the batch).
    `savepoint`: a worker may be storing it at this moment (the batch lost a race once)."""
    if known:
        must_write_messages(session, key=complaint.idempotency_key)
        existing = _existing(context, session, complaint.idempotency_key)
        if existing is not None:
            return existing
    if not savepoint:
        return _create(context, session, complaint)
    try:
        with session.begin_nested():
            return _create(context, session, complaint)
    except IntegrityError:
        # Another worker stored the same message between our check and our insert.
        again = _existing(context, session, complaint.idempotency_key)
        if again is None:
            raise
        return again


def _existing(context: Context, session: Session, key: str) -> Outcome | None:
    message = session.scalar(select(models.Message).where(models.Message.idempotency_key == key))
    if message is None:
        return None
    case = message.case
    receipt = None
    if case is not None and case.sealed_receipt and message.kind == "complaint":
        receipt = context.crypto.open(case.sealed_receipt)
    deliveries = session.scalars(
        select(models.Delivery.id).where(
            # Exact keys: a prefix match (LIKE) cannot use the unique index.
            models.Delivery.dedupe_key.in_([f"{key}:{kind}" for kind in REPLY_KINDS]),
            models.Delivery.status == "queued",
        )
    ).all()
    return Outcome(
        key=key,
        ticket=case.ticket if case else None,
        status=case.status if case else None,
        outcome="duplicate",
        case_id=case.id if case else None,
        receipt=receipt,
        deliveries=tuple(deliveries),
        case_row=case,  # a copy of a message earlier in this batch: its case is unnumbered
    )


def _read_reporters(session: Session, hashes: set[str]) -> None:
    """The batch's known reporters in one query, for `_reporter`. Not in a batch stored
    with savepoints: a reporter made in one that rolled back would stay here."""
    found = session.scalars(
        select(models.Reporter).where(models.Reporter.address_hash.in_(hashes))
    ).all()
    session.info["reporters"] = {(r.address_hash, r.confidential): r for r in found}
    session.info["reporters_read"] = hashes


def _reporter(
    context: Context, session: Session, complaint: Complaint
) -> tuple[models.Reporter, bool]:
    """The reporter row for the complaint's sender, and whether it was made just now."""
    person = complaint.reporter
    confidential = complaint.confidential
    address_hash = context.crypto.lookup_hash(person.address) if person.address else None
    known: dict[tuple[str | None, bool], models.Reporter] | None = session.info.get("reporters")
    if address_hash is not None:
        if known is not None and address_hash in session.info["reporters_read"]:
            found = known.get((address_hash, confidential))
        else:
            found = session.scalar(
                select(models.Reporter).where(
                    models.Reporter.address_hash == address_hash,
                    models.Reporter.confidential == confidential,
                )
            )
        if found is not None:
            if not confidential and person.name and not found.name:
                found.name = person.name
            return found, False
    reporter = models.Reporter(
        kind=person.kind,
        confidential=confidential,
        address_hash=address_hash,
        language=complaint.language,
    )
    if confidential:
        reporter.sealed_contact = context.crypto.seal(
            {"address": person.address, "name": person.name, "email": person.email}
        )
    else:
        reporter.address = person.address
        reporter.name = person.name
        reporter.email = person.email
    session.add(reporter)
    if known is not None and address_hash is not None:
        known[(address_hash, confidential)] = reporter
    return reporter, True


# A sequential ticket's stand-in until the batch is numbered: unique like a ticket, and
# no ticket looks like it. The case's title, its reply and its link note carry it too.
STAND_IN = "~ticket-"
UNNUMBERED = re.compile(re.escape(STAND_IN) + "[0-9a-f]{16}")


def _next_ticket(context: Context, session: Session, year: int, confidential: bool) -> str:
    prefix = context.settings.ticket_prefix
    if confidential:
        # Random, not sequential: the reference says nothing about when it came in.
        while True:
            ticket = format_ticket(prefix, year, random.SystemRandom().randrange(10**6), True)
            if session.scalar(select(models.Case.id).where(models.Case.ticket == ticket)) is None:
                return ticket
    stand_in = f"{STAND_IN}{uuid.uuid4().hex[:16]}"
    session.info.setdefault("unnumbered", []).append((stand_in, year))
    return stand_in


def _number_tickets(context: Context, session: Session) -> None:
    """Give the batch's new cases their numbers, in the order they were made, as the last
    thing before the commit: one counter statement per year.

    The counter row stays locked from the moment it moves until the commit, and every
    worker storing a new case needs it. Taken at a batch's first new case, it made the
    workers store one batch at a time, however many there were; taken here, they wait
    for each other only for the commit. Only cases still in the session are numbered: a
    case whose savepoint rolled back takes no number, so tickets have no gaps.
    """
    reserved: list[tuple[str, int]] = session.info.pop("unnumbered", [])
    held = session.info.pop("holding", [])
    if not reserved:
        return
    # The batch's rows: those not flushed yet, and those flushed early (a query's
    # autoflush) that something still holds — the outcomes hold cases and replies, and
    # `held` the rest (see workers.grouping).
    rows = [*session.new, *session.identity_map.values(), *held]
    waiting = {
        row.ticket
        for row in rows
        if isinstance(row, models.Case) and row.ticket.startswith(STAND_IN)
    }
    prefix = context.settings.ticket_prefix
    numbers: dict[str, str] = {}
    for year in sorted({year for _, year in reserved}):
        stand_ins = [s for s, y in reserved if y == year and s in waiting]
        if stand_ins:
            # The rows are written once, numbered, as the batch commits: not flushed here
            # with their stand-ins only to be updated row by row.
            with session.no_autoflush:
                last = _advance_counter(session, prefix, year, len(stand_ins))
            first = last - len(stand_ins) + 1
            for offset, stand_in in enumerate(stand_ins):
                numbers[stand_in] = format_ticket(prefix, year, first + offset)

    def numbered(text: str) -> str:
        return UNNUMBERED.sub(lambda m: numbers.get(m.group(), m.group()), text)

    for row in rows:
        if isinstance(row, models.Case):
            row.ticket = numbers.get(row.ticket, row.ticket)
            row.title = numbers.get(row.title, row.title)
        elif isinstance(row, models.Delivery) and not row.sealed:
            if STAND_IN in row.body:
                row.body = numbered(row.body)
            if row.subject and STAND_IN in row.subject:
                row.subject = numbered(row.subject)
        elif isinstance(row, models.AuditEvent) and isinstance(row.detail, dict):
            ticket = row.detail.get("ticket")
            if isinstance(ticket, str) and ticket in numbers:
                row.detail = {**row.detail, "ticket": numbers[ticket]}
    later = rows_later(session)
    for waiting_reply in later.deliveries if later is not None else ():
        values = waiting_reply.values
        if not values["sealed"]:
            if STAND_IN in values["body"]:
                values["body"] = numbered(values["body"])
            if values["subject"] and STAND_IN in values["subject"]:
                values["subject"] = numbered(values["subject"])


def _advance_counter(session: Session, prefix: str, year: int, by: int) -> int:
    """Move the year's ticket counter on by `by`; the last number it now stands at."""
    table = cast(Table, models.TicketCounter.__table__)
    counter = (
        update(table)
        .where(table.c.prefix == prefix, table.c.year == year)
        .values(last=table.c.last + by)
        .returning(table.c.last)
    )
    number = session.execute(counter).scalar_one_or_none()
    if number is None:  # the year's first ticket
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(table)
            .values(prefix=prefix, year=year, last=0)
            .on_conflict_do_nothing(index_elements=["prefix", "year"])
        )
        number = session.execute(counter).scalar_one()
    return int(number)


def _message_values(
    context: Context, complaint: Complaint, reporter: models.Reporter | None, kind: str
) -> dict[str, Any]:
    sealed = complaint.confidential or (reporter is not None and reporter.confidential)
    return {
        "idempotency_key": complaint.idempotency_key,
        "direction": "in",
        "channel": complaint.channel,
        "provider": complaint.provider,
        "provider_message_id": None if sealed else complaint.provider_message_id,
        "kind": kind,
        "text": complaint.text,
        "subject": complaint.subject,
        "raw": None if sealed else complaint.raw,
        "sealed_raw": context.crypto.seal(
            {"raw": complaint.raw, "provider_message_id": complaint.provider_message_id}
        )
        if sealed
        else None,
        "received_at": complaint.received_at,
    }


def _add_message(
    context: Context,
    session: Session,
    complaint: Complaint,
    reporter: models.Reporter | None,
    case: models.Case | None,
    kind: str,
) -> None:
    """The inbound message's row: written with the batch's others (grouping.RowsLater),
    or an ORM object when it has attachments (rows of their own that point at it) or the
    batch is stored in savepoints."""
    values = _message_values(context, complaint, reporter, kind)
    later = rows_later(session)
    if later is not None and not complaint.attachments:
        later.add_message(values, case, reporter)
        return
    message = models.Message(**values, case=case, reporter=reporter)
    for item in complaint.attachments:
        message.attachments.append(
            models.Attachment(
                content_type=item.content_type,
                size=item.size,
                filename=item.filename,
                url=item.url,
                sha256=item.sha256,
                data=item.data(),
            )
        )
    session.add(message)


def _delivery(
    context: Context,
    session: Session,
    complaint: Complaint,
    reporter: models.Reporter,
    case: models.Case | None,
    kind: str,
    values: dict[str, str],
) -> models.Delivery | LaterRow | None:
    """The answer to an inbound message, on its channel; none when there is no way back.
    Written with the batch's others (grouping.RowsLater), except an email's: the cap on
    automatic answers counts the batch's own (`_no_auto_reply`)."""
    channel = REPLY_CHANNEL.get(complaint.channel)
    if channel is None:
        # The web form and the app show the ticket on screen; a contact left there
        # still gets a confirmation, to the outbox until a provider is configured.
        if complaint.reporter.kind == "phone":
            channel = "sms"
        elif complaint.reporter.kind == "email":
            channel = "email"
        else:
            return None
    if reporter.opted_out and kind != "stopped":
        return None
    replies = context.replies
    body = replies.render(complaint.language, kind, **values)
    sealed = "receipt" in values
    subject = None
    held = None
    if channel == "email":
        subject = replies.render(
            complaint.language, "email_subject", ticket=values.get("ticket", "")
        )
        held = _no_auto_reply(context, complaint, reporter)
    row = {
        "dedupe_key": f"{complaint.idempotency_key}:{kind}",
        "channel": channel,
        "kind": kind,
        "language": complaint.language,
        "subject": subject,
        "body": context.crypto.seal(body) if sealed else body,
        "sealed": sealed,
        "in_reply_to": complaint.raw.get("message_id") if isinstance(complaint.raw, dict) else None,
        "status": "queued" if held is None else "suppressed",
        "error": held,
    }
    later = rows_later(session)
    if later is not None and channel != "email":
        return later.add_delivery(row, case, reporter)
    delivery = models.Delivery(**row, case=case, reporter=reporter)
    session.add(delivery)
    return delivery


def _no_auto_reply(context: Context, complaint: Complaint, reporter: models.Reporter) -> str | None:
    """Why an email answer must not go out (RFC 3834, loops), or None when it may."""
    if complaint.channel == "email":
        reason = complaint.raw.get("no_autoreply") if isinstance(complaint.raw, dict) else None
        if reason:
            return str(reason)
    if (complaint.reporter.address or "").lower() == context.settings.email_from.lower():
        return "sent from our own address"
    session = object_session(reporter)
    if session is None or reporter.address_hash is None:
        return None
    # Per address, across the person's open and confidential reporter rows.
    recent = session.scalar(
        select(func.count(models.Delivery.id))
        .join(models.Reporter, models.Reporter.id == models.Delivery.reporter_id)
        .where(
            models.Reporter.address_hash == reporter.address_hash,
            models.Delivery.channel == "email",
            models.Delivery.status != "suppressed",
            models.Delivery.created_at >= datetime.now(UTC) - AUTO_REPLY_WINDOW,
        )
    )
    if (recent or 0) >= AUTO_REPLY_CAP:
        return f"auto-reply cap: {AUTO_REPLY_CAP} per address per hour"
    return None


def _create(context: Context, session: Session, complaint: Complaint) -> Outcome:
    intake = complaint.raw.get("intake") if isinstance(complaint.raw, dict) else None
    if intake in KEPT_WITHOUT_CASE:
        return _keep_without_case(context, session, complaint, str(intake))
    referenced = None
    if complaint.command is None:
        referenced = _referenced_case(context, session, complaint)
        if referenced is not None and referenced.confidential and not complaint.confidential:
            # A message in a confidential case's thread is as confidential as the case: a
            # reply saying only "photo attached" must not put the reporter in plain text.
            complaint = replace(complaint, confidential=True)
    if complaint.command == "status" and _asks_about_confidential(context, complaint):
        # "STATUS BGR-2026-R…": the number that asks is tied to a confidential case, so it
        # is stored as that case's reporter is — sealed, never in clear beside the case.
        complaint = replace(complaint, confidential=True)
    reporter, new_reporter = _reporter(context, session, complaint)
    if complaint.command == "status":
        return _status_request(context, session, complaint, reporter)
    if complaint.command == "stop":
        reporter.opted_out = True
        _add_message(context, session, complaint, reporter, None, "stop")
        return Outcome(complaint.idempotency_key, None, None, "stop", None)

    followed = _followed_case(referenced, reporter)
    if followed is not None:
        _add_message(context, session, complaint, reporter, followed, "followup")
        followed.updated_at = datetime.now(UTC)
        delivery = _delivery(
            context,
            session,
            complaint,
            reporter,
            followed,
            "received_followup",
            {"ticket": followed.ticket},
        )
        return _finish(complaint, followed, "followup", delivery, None)

    rules = _grouping_rules(context)
    grouped = None
    if referenced is None and not new_reporter:  # someone new has no open case yet
        if reporter.id is None:
            session.flush()  # made for an earlier message of this batch: asked for by id
        must_write_messages(session, reporter=reporter)  # its case's messages are read
        bursts = complaint.channel in BURST_CHANNELS
        grouped = open_case_of(session, reporter, complaint, rules, bursts=bursts)
    if grouped is not None:
        case, why = grouped
        _add_message(context, session, complaint, reporter, case, "followup")
        case.updated_at = datetime.now(UTC)
        fallback = context_taxonomy_fallback(context)
        if case.topic == fallback and complaint.topic != fallback:
            # Pieces of a burst can be stored out of order by different workers ("di Jl.
            # Pajajaran" before "jalan berlubang"): the piece that names the problem wins.
            case.topic = complaint.topic
            case.title = complaint.title[:200] or case.title
            forget_candidates(session)
        # A burst is one complaint told in pieces: it already had its ticket reply.
        delivery = None
        if why == "repeat":
            delivery = _delivery(
                context,
                session,
                complaint,
                reporter,
                case,
                "received_followup",
                {"ticket": case.ticket},
            )
        return _finish(complaint, case, why, delivery, None)

    year = complaint.received_at.astimezone(UTC).year
    ticket = _next_ticket(context, session, year, complaint.confidential)
    receipt = new_receipt() if complaint.confidential else None
    location = complaint.location
    now = datetime.now(UTC)
    case = models.Case(
        ticket=ticket,
        status="received",
        topic=complaint.topic,
        confidential=complaint.confidential,
        title=complaint.title[:200] or ticket,
        language=complaint.language,
        channel=complaint.channel,
        reporter=reporter,
        lat=location.lat if location else None,
        lon=location.lon if location else None,
        address=location.address if location else None,
        location_label=location.label if location else None,
        fingerprint=complaint.fingerprint,
        receipt_hash=context.crypto.lookup_hash(receipt) if receipt else None,
        sealed_receipt=context.crypto.seal(receipt) if receipt else None,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    # Someone else's ticket or thread: a case of its own, noted for operators. Never when
    # either case is confidential: the note would tie a confidential report to a person.
    note = None
    if referenced is not None and not (referenced.confidential or complaint.confidential):
        note = f"Refers to {referenced.ticket}"
    later = rows_later(session)
    if later is not None:
        later.events.append((case, note))
    else:
        case.events.append(
            models.StatusEvent(actor="system", from_status=None, to_status="received", note=note)
        )
    _add_message(context, session, complaint, reporter, case, "complaint")
    link_incident(session, case, complaint, rules)
    values = {"ticket": ticket}
    if receipt:
        values["receipt"] = receipt
    delivery = _delivery(
        context,
        session,
        complaint,
        reporter,
        case,
        "received_confidential" if receipt else "received",
        values,
    )
    return _finish(complaint, case, "new", delivery, receipt)


BURST_CHANNELS = ("sms", "whatsapp", "email")


def context_taxonomy_fallback(context: Context) -> str:
    from config.data import load_taxonomy

    return load_taxonomy(context.settings.topics_file).fallback


def _grouping_rules(context: Context) -> GroupingRules:
    settings = context.settings
    return GroupingRules(
        burst=timedelta(seconds=settings.burst_seconds),
        link=LinkRules(
            max_distance_m=settings.incident_distance_m, window_days=settings.incident_days
        ),
    )


def _finish(
    complaint: Complaint,
    case: models.Case,
    outcome: str,
    delivery: models.Delivery | LaterRow | None,
    receipt: str | None,
) -> Outcome:
    return Outcome(
        complaint.idempotency_key,
        case.ticket,
        case.status,
        outcome,
        case.id,
        receipt,
        case_row=case,
        delivery_rows=() if delivery is None else (delivery,),
        logged=(complaint.channel, case.topic),
    )


def _referenced_case(
    context: Context, session: Session, complaint: Complaint
) -> models.Case | None:
    """The case a message points at: a reply to one of our messages about it (email
    In-Reply-To/References), or else its ticket number in the text or subject."""
    if complaint.reply_to:
        refs = list(complaint.reply_to)
        ours = [d for d in (delivery_of(context.settings, r) for r in refs) if d is not None]
        case_id = session.scalar(
            select(models.Delivery.case_id)
            .where(
                models.Delivery.channel == complaint.channel,
                models.Delivery.case_id.is_not(None),
                or_(models.Delivery.provider_id.in_(refs), models.Delivery.id.in_(ours)),
            )
            .order_by(models.Delivery.id.desc())
            .limit(1)
        )
        if case_id is not None:
            return session.get(models.Case, case_id)
    if complaint.ticket_ref and complaint.ticket_ref_valid:
        return session.scalar(select(models.Case).where(models.Case.ticket == complaint.ticket_ref))
    return None


def _asks_about_confidential(context: Context, complaint: Complaint) -> bool:
    ref = parse_ticket(complaint.ticket_ref or "", context.settings.ticket_prefix)
    return ref is not None and ref.confidential


def _followed_case(case: models.Case | None, reporter: models.Reporter) -> models.Case | None:
    """A message that points at one of this reporter's own cases is a follow-up to it."""
    if case is None or reporter.address_hash is None or case.reporter_id != reporter.id:
        return None
    return case


def _keep_without_case(
    context: Context, session: Session, complaint: Complaint, kind: str
) -> Outcome:
    _add_message(context, session, complaint, None, None, kind)
    log.info("kept %s message as %s, without a case", complaint.channel, kind)
    return Outcome(complaint.idempotency_key, None, None, kind, None)


def _status_request(
    context: Context, session: Session, complaint: Complaint, reporter: models.Reporter
) -> Outcome:
    prefix = context.settings.ticket_prefix
    asked = complaint.ticket_ref or ""
    ref = parse_ticket(asked, prefix) if asked else None
    case = None
    if ref is not None and ref.valid:
        case = session.scalar(select(models.Case).where(models.Case.ticket == ref.canonical))
    authorised = False
    if case is not None:
        if case.confidential:
            # Only the receipt code opens a confidential case, never the phone number alone.
            receipt_hash = case.receipt_hash or ""
            authorised = any(
                context.crypto.check_receipt(token, receipt_hash)
                for token in complaint.text.replace(ref.canonical if ref else "", " ").split()
                if len(token.replace("-", "")) == 12
            )
        else:
            authorised = reporter.address_hash is not None and case.reporter_id == reporter.id
    visible = case if authorised else None
    _add_message(context, session, complaint, reporter, visible, "status")
    if ref is not None and not ref.valid:
        kind, values = "bad_check_digit", {"ticket": asked or "?"}
    elif visible is None:
        kind, values = "not_found", {"ticket": ref.canonical if ref else (asked or "?")}
    else:
        status = context.replies.status_name(complaint.language, visible.status)
        kind, values = "status", {"ticket": visible.ticket, "status": status}
    delivery = _delivery(context, session, complaint, reporter, visible, kind, values)
    return Outcome(
        complaint.idempotency_key,
        visible.ticket if visible else None,
        visible.status if visible else None,
        "status" if visible else "not_found",
        visible.id if visible else None,
        delivery_rows=() if delivery is None else (delivery,),
    )
