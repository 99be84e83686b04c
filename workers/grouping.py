"""Bursts, repeats and incidents: how one problem stays one thing for operators.

- A burst: the same reporter writes again within minutes ("jalan berlubang", then "di
  Jl. Pajajaran depan Tugu Kujang", then a photo) — one case, one ticket reply.
- A repeat: the same reporter sends the same complaint again — their existing ticket.
- An incident: other reporters describe the same problem nearby — each keeps their own
  case and ticket, linked (`case_links`, actor "system") to the first report, so a status
  change there reaches every linked reporter. Confidential cases are never linked.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import Insert, String, Table, bindparam, func, insert, select, text, type_coerce
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from normalizer.complaint import Complaint
from normalizer.similarity import (
    IncidentCandidate,
    IncidentIndex,
    LinkRules,
    best_incident,
    incident_verdicts,
    is_repeat,
    looks_like_new_complaint,
    merge_verdicts,
)
from workers import models

OPEN_STATUSES = ("received", "verified", "dispatched", "in_progress")
CANDIDATE_LIMIT = 300


@dataclass(frozen=True)
class GroupingRules:
    burst: timedelta = timedelta(minutes=3)
    link: LinkRules = field(default_factory=LinkRules)


@dataclass(eq=False)
class LaterRow:
    """A message or a reply of a batch, kept as its column values until the batch's cases
    and reporters have ids (`write_rows_later`); a reply gets its own id then."""

    values: dict[str, Any]
    case: models.Case | None
    reporter: models.Reporter | None
    id: int | None = None

    @property
    def status(self) -> str | None:
        return cast(str | None, self.values.get("status"))

    def row(self) -> dict[str, Any]:
        return {
            **self.values,
            "case_id": None if self.case is None else self.case.id,
            "reporter_id": None if self.reporter is None else self.reporter.id,
        }


@dataclass
class RowsLater:
    """Rows a batch makes that nothing in it reads back, or only through a query that is
    preceded by writing them: each new case's status event, each incident link with its
    audit event, and the messages and replies (`workers.store`). They are written once
    the batch's cases have their ids and numbers (`write_rows_later`), in one INSERT per
    table, not each through the unit of work: an ORM object cost a worker about as much as
    the rest of its row's work, and these are five of a linked case's seven rows."""

    events: list[tuple[models.Case, str | None]] = field(default_factory=list)
    # (the new case, the incident's first case or its id, the score)
    links: list[tuple[models.Case, models.Case | int, float]] = field(default_factory=list)
    # (the new case, the incident's first case's id, the score): the link is written, and
    # its audit waits for the case's number
    audits: list[tuple[models.Case, int, float]] = field(default_factory=list)
    # Messages waiting, with their idempotency keys and their reporters (by identity: a
    # batch has one row per reporter), for `must_write_messages`.
    messages: list[LaterRow] = field(default_factory=list)
    message_keys: set[str] = field(default_factory=set)
    message_reporters: set[int] = field(default_factory=set)
    # Replies wait for the batch's numbers (their text carries the ticket).
    deliveries: list[LaterRow] = field(default_factory=list)

    def add_message(
        self,
        values: dict[str, Any],
        case: models.Case | None,
        reporter: models.Reporter | None,
    ) -> None:
        self.messages.append(LaterRow(values, case, reporter))
        self.message_keys.add(values["idempotency_key"])
        if reporter is not None:
            self.message_reporters.add(id(reporter))

    def add_delivery(
        self, values: dict[str, Any], case: models.Case | None, reporter: models.Reporter | None
    ) -> LaterRow:
        row = LaterRow(values, case, reporter)
        self.deliveries.append(row)
        return row


_EVENTS = insert(cast(Table, models.StatusEvent.__table__))
_LINKS = insert(cast(Table, models.CaseLink.__table__))
_AUDITS = insert(cast(Table, models.AuditEvent.__table__))
_MESSAGES = insert(cast(Table, models.Message.__table__))
_DELIVERY_TABLE = cast(Table, models.Delivery.__table__)
_DELIVERIES = insert(_DELIVERY_TABLE).returning(_DELIVERY_TABLE.c.id, sort_by_parameter_order=True)
# PostgreSQL: with RETURNING, SQLAlchemy writes a batch's rows of a table as one INSERT of
# many rows ("insertmanyvalues"); without, psycopg's executemany sends one INSERT per
# row, each for the server to bind and run. The ids that come back are not needed.
_IN_ONE = {
    statement: statement.returning(cast(Table, statement.table).c.id)
    for statement in (_EVENTS, _LINKS, _AUDITS, _MESSAGES)
}


def _insert_all(connection: Connection, statement: Insert, rows: list[dict[str, Any]]) -> None:
    if connection.dialect.name == "postgresql":
        statement = _IN_ONE[statement]
    connection.execute(statement, rows)


def rows_later(session: Session) -> RowsLater | None:
    """Where this transaction's rows that wait for ids go; None when they are made as
    ORM objects at once (a batch stored complaint by complaint in savepoints, where one
    rolled back must take its rows with it)."""
    later = session.info.get("rows_later")
    return later if isinstance(later, RowsLater) else None


def must_write_messages(
    session: Session, *, key: str | None = None, reporter: models.Reporter | None = None
) -> None:
    """Before a query that may read this batch's messages (by their idempotency key, or
    a reporter's): write those waiting, if any of them is one."""
    later = rows_later(session)
    if later is None or not later.messages:
        return
    if (key is not None and key in later.message_keys) or (
        reporter is not None and id(reporter) in later.message_reporters
    ):
        write_rows_later(session, audits=False)


def write_rows_later(session: Session, *, audits: bool = True) -> None:
    """Write the rows waiting for their cases' ids: flush the cases, then an INSERT per
    table. Called before the commit (after numbering), and before a query that must see
    them (`_pool`, which must see the links and messages; `must_write_messages`). With
    `audits=False` the audit events and the replies wait, for the ticket they carry may
    be a stand-in until the batch is numbered (workers.store._number_tickets)."""
    later = rows_later(session)
    if later is None or not (
        later.events
        or later.links
        or later.messages
        or (audits and (later.audits or later.deliveries))
    ):
        return
    session.flush()
    connection = session.connection()
    if later.messages:
        _insert_all(connection, _MESSAGES, [row.row() for row in later.messages])
        later.messages = []
        later.message_keys.clear()
        later.message_reporters.clear()
    if later.events:
        _insert_all(
            connection,
            _EVENTS,
            [
                {
                    "case_id": case.id,
                    "actor": "system",
                    "from_status": None,
                    "to_status": "received",
                    "note": note,
                }
                for case, note in later.events
            ],
        )
        later.events = []
    if later.links:
        made = [
            (case, root if isinstance(root, int) else root.id, score)
            for case, root, score in later.links
        ]
        _insert_all(
            connection,
            _LINKS,
            [
                {"case_id": case.id, "into_case_id": root, "actor": "system"}
                for case, root, _ in made
            ],
        )
        later.audits += made
        later.links = []
    if audits and later.audits:
        _insert_all(
            connection,
            _AUDITS,
            [
                {
                    "case_id": root,
                    "operator_id": None,
                    "actor": "system",
                    "action": "incident_link",
                    "note": None,
                    "detail": {"ticket": case.ticket, "score": score},
                }
                for case, root, score in later.audits
            ],
        )
        later.audits = []
    if audits and later.deliveries:
        inserted = connection.execute(_DELIVERIES, [row.row() for row in later.deliveries])
        for row, (delivery_id,) in zip(later.deliveries, inserted.all(), strict=True):
            row.id = delivery_id
        later.deliveries = []


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _window_start(complaint: Complaint, rules: GroupingRules) -> datetime:
    """The oldest a case may be to be linked with `complaint`."""
    return _aware(complaint.received_at) - timedelta(days=rules.link.window_days)


def _stored_time(value: datetime | str) -> datetime:
    """A time read without the column's type: a datetime (PostgreSQL) or SQLite's text;
    in UTC. psycopg gives PostgreSQL's times in the session's zone (a `ZoneInfo`, even for
    UTC), and linking compares a candidate's time with each complaint's as a number only
    when both have a fixed offset (`normalizer.similarity._Linking.stamp`): in another
    zone every comparison took the slow way, a twentieth of a PostgreSQL worker."""
    moment = _aware(value if isinstance(value, datetime) else datetime.fromisoformat(value))
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def serialize_reporters(session: Session, address_hashes: Iterable[str]) -> None:
    """Messages of one reporter are handled one at a time, whichever worker holds them.

    PostgreSQL: transaction-scoped advisory locks on a batch's reporters, taken in one
    statement and in one order, so two batches that share reporters wait for each other
    rather than deadlock. Take them before reading: what the other batch stored is then
    seen. SQLite: the worker's transactions begin IMMEDIATE (see workers.db), which
    already serialises writers.
    """
    keys = sorted({int(address_hash[:15], 16) for address_hash in address_hashes})
    if keys and session.get_bind().dialect.name == "postgresql":
        session.connection().execute(
            text(
                "SELECT pg_advisory_xact_lock(k) FROM "
                "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) AS ordered"
            ),
            {"keys": keys},
        )


def _first_text(session: Session, case_id: int) -> str:
    first = session.scalar(
        select(models.Message.text)
        .where(models.Message.case_id == case_id, models.Message.direction == "in")
        .order_by(models.Message.received_at, models.Message.id)
        .limit(1)
    )
    return first or ""


def open_case_of(
    session: Session,
    reporter: models.Reporter,
    complaint: Complaint,
    rules: GroupingRules,
    *,
    bursts: bool = True,
) -> tuple[models.Case, str] | None:
    """This reporter's open case that the message continues ("burst") or repeats.

    `bursts` is off for the web form and the app: each submission there is a complaint
    told whole, so only a repeat of the same complaint joins the open case."""
    if reporter.address_hash is None:
        return None
    case = session.scalar(
        select(models.Case)
        .where(models.Case.reporter_id == reporter.id, models.Case.status.in_(OPEN_STATUSES))
        .order_by(models.Case.created_at.desc(), models.Case.id.desc())
        .limit(1)
    )
    if case is None:
        return None
    received = _aware(complaint.received_at)
    last_in = session.scalar(
        select(func.max(models.Message.received_at)).where(
            models.Message.case_id == case.id, models.Message.direction == "in"
        )
    )
    first_text = _first_text(session, case.id)
    within_burst = bursts and last_in is not None and abs(received - _aware(last_in)) <= rules.burst
    if within_burst and not looks_like_new_complaint(
        first_text, complaint.text, case.topic, complaint.topic
    ):
        return case, "burst"
    window = timedelta(days=rules.link.window_days)
    if received - _aware(case.created_at) <= window and is_repeat(
        first_text, complaint.text, rules.link
    ):
        return case, "repeat"
    return None


# A stored report's candidate, kept per worker process: building it means reading the
# case's first message and analysing its text, the same for every complaint it is compared
# with. Keyed by the whole row (topic, place, updated_at — which every added message moves),
# so a case whose topic changed, or whose burst piece stored out of order became its first
# message, is read again.
_CANDIDATES: dict[tuple[Any, ...], IncidentCandidate] = {}
_CANDIDATES_MAX = 20_000


@dataclass
class _Candidate:
    id: int  # a case made in this transaction and not yet flushed has a key below zero
    reporter_id: int | None
    created_at: datetime
    report: IncidentCandidate
    root: int  # the incident's first case: itself, or the case it is linked into
    reporter: models.Reporter | None = None  # for a case made in this transaction


@dataclass
class _Pool:
    """A topic's recent open cases, read once per store transaction (a batch of up to a
    hundred complaints) instead of once per complaint; the batch's own new cases are
    added as they are made. Newest first."""

    since: datetime
    cases: list[_Candidate]
    # The batch's new cases, which have no id until the batch is flushed, by their key.
    made: dict[int, models.Case] = field(default_factory=dict)
    # Whether an incident's first case may still be linked into, once asked.
    roots_open: dict[int, bool] = field(default_factory=dict)
    # The cases added since the pool was read ahead (caught up under the lock, or made by
    # the batch), newest first: what verdicts read ahead (`_Judged`) have not seen.
    fresh: list[_Candidate] = field(default_factory=list)
    # Its newest CANDIDATE_LIMIT cases as an index (`_verdicts`): the kept pool's it was
    # read from (which takes the batch's new cases back out before the next batch), or
    # made when first asked for. Kept up as the batch adds cases; not once caught up.
    indexed: _Indexed | None = None
    kept: _KeptPool | None = None

    def key(self, case: models.Case) -> int:
        if case.id is not None:
            return case.id
        key = -(len(self.made) + 1)
        self.made[key] = case
        return key


POOL_MARGIN = 50  # read more than CANDIDATE_LIMIT: a reporter's own cases are left out later
# A pool reaches this much further back than the complaint it was read for: a batch's
# complaints are not in the order they were received (gateways queue them as their
# claims return), and an earlier one would otherwise read the pool again.
POOL_SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class _Added:
    added: _Candidate
    before: int | None  # what the index needs to take it out again
    gone: _Candidate | None  # the case it pushed out of the index, if any


@dataclass
class _Indexed:
    """A pool's newest CANDIDATE_LIMIT cases (or all, if fewer) as an IncidentIndex, and
    what decides whether it holds a complaint's candidates: none of them may be left out
    for the complaint (its reporter's own, the case itself) or older than its window."""

    index: IncidentIndex
    held: int  # how many of the pool's newest cases it holds
    reporter_ids: Counter[int]  # of the cases read from the store
    made_by: Counter[int]  # id() of the reporter rows of the cases the batch made
    keys: Counter[int]
    oldest: datetime | None  # at most the oldest it holds (not raised when one goes)

    @classmethod
    def of(cls, cases: list[_Candidate]) -> _Indexed:
        newest = cases[:CANDIDATE_LIMIT]
        indexed = cls(
            IncidentIndex((candidate.root, candidate.report) for candidate in newest),
            0,
            Counter(),
            Counter(),
            Counter(),
            None,
        )
        for candidate in newest:
            indexed._count(candidate, 1)
        return indexed

    def _count(self, candidate: _Candidate, step: int) -> None:
        self.held += step
        self.keys[candidate.id] += step
        if candidate.reporter is None:
            if candidate.reporter_id is not None:
                self.reporter_ids[candidate.reporter_id] += step
        else:
            self.made_by[id(candidate.reporter)] += step
        if step > 0 and (self.oldest is None or candidate.created_at < self.oldest):
            self.oldest = candidate.created_at

    def add_newest(self, cases: list[_Candidate]) -> _Added:
        """`cases[0]` was just put before the others: held, and the one it pushed past
        CANDIDATE_LIMIT let go. Returns what `undo` needs."""
        added = cases[0]
        before = self.index.add_newest(added.root, added.report)
        self._count(added, 1)
        gone = None
        if self.held > CANDIDATE_LIMIT:
            gone = cases[CANDIDATE_LIMIT]
            self.index.drop(gone.root, gone.report)
            self._count(gone, -1)
        return _Added(added, before, gone)

    def undo(self, done: _Added) -> None:
        """As before `add_newest`, undone in the reverse order of what was added since."""
        if done.gone is not None:
            self.index.add_oldest(done.gone.root, done.gone.report)
            self._count(done.gone, 1)
        self.index.drop(done.added.root, done.added.report, done.before)
        self._count(done.added, -1)

    def holds_all(
        self,
        since: datetime,
        key: int | None,
        reporter: models.Reporter | None,
        reporter_id: int | None,
    ) -> bool:
        """Whether `_members` would take exactly the cases held."""
        return not (
            (self.oldest is not None and self.oldest < since)
            or (key is not None and self.keys[key] > 0)  # a Counter reads 0 for a missing key
            or (reporter is not None and self.made_by[id(reporter)] > 0)
            or (reporter_id is not None and self.reporter_ids[reporter_id] > 0)
        )


def _verdicts(
    pool: _Pool,
    new: IncidentCandidate,
    since: datetime,
    key: int | None,
    reporter: models.Reporter | None,
    reporter_id: int | None,
    rules: LinkRules,
) -> dict[int, float | None]:
    """`incident_verdicts` of the pool's candidates for a complaint (`_members`). A
    worker compares every complaint of a topic with the same few hundred cases: the
    pool's index groups them by incident and wording, and gives the same verdicts with a
    look-up per wording instead of per case. A complaint whose candidates are not the ones
    it holds (its reporter's own cases are among them, or cases older than its window) is
    compared case by case."""
    indexed = pool.indexed
    if indexed is None:
        indexed = pool.indexed = _Indexed.of(pool.cases)
    if indexed.holds_all(since, key, reporter, reporter_id):
        return indexed.index.verdicts(new, rules)
    return incident_verdicts(new, _members(pool.cases, since, key, reporter, reporter_id), rules)


def forget_candidates(session: Session) -> None:
    """After a case's topic changed in this transaction: read the pools again."""
    session.info.pop("incident_pools", None)
    session.info.pop("incident_verdicts", None)  # judged on the pools as they were
    session.info["incident_pools_forgotten"] = True


def _pool(session: Session, topic: str, since: datetime) -> _Pool:
    pools: dict[str, _Pool] = session.info.setdefault("incident_pools", {})
    found = pools.get(topic)
    if found is not None and found.since <= since:
        return found
    # The batch's new cases of this topic join its pool as they are made (link_incident),
    # so a topic's first read need not flush them; a pool read again (for an older
    # complaint, or after a topic changed) must see them in the database.
    fresh = found is None and not session.info.pop("incident_pools_forgotten", False)
    if not fresh:
        write_rows_later(session, audits=False)  # the links made so far decide the roots
    with session.no_autoflush if fresh else contextlib.nullcontext():
        pools[topic] = found = _load_pool(session, topic, since)
    return found


def _load_pool(session: Session, topic: str, since: datetime, upto: int | None = None) -> _Pool:
    since -= POOL_SLACK  # link_incident still leaves out what is older than its window
    return _Pool(since, _candidates(*_read_pool(session, [topic], since, upto=upto)))


def _candidates(rows: list[Any], first_texts: dict[int, str]) -> list[_Candidate]:
    cases = []
    for row in rows:
        key = tuple(row[:7])
        report = _CANDIDATES.get(key)
        if report is None:
            report = IncidentCandidate.from_values(
                {
                    "topic": row.topic,
                    "text": first_texts.get(row.id, ""),
                    "lat": row.lat,
                    "lon": row.lon,
                    "address": row.address,
                    "received_at": _stored_time(row.created_at),
                }
            )
            _CANDIDATES[key] = report
        assert report.received_at is not None
        cases.append(
            _Candidate(
                row.id, row.reporter_id, report.received_at, report, row.into_case_id or row.id
            )
        )
    return cases


# A topic's pool is read whole at most this often per worker; in between, only the cases
# made since are read (`read_pools_ahead`).
POOL_REFRESH_SECONDS = 5.0


@dataclass
class _KeptPool:
    topic: str
    since: datetime
    cases: list[_Candidate]  # as read from the database: newest first, never a batch's own
    read_at: float  # time.monotonic() of the whole read
    last_id: int  # the largest case id when it was read or last caught up
    # Its newest cases as an index, and what batches added to it since (their own new
    # cases, which the next batch reads from the store): undone before it is next used.
    indexed: _Indexed | None = None
    added: list[_Added] = field(default_factory=list)

    def undo_batch(self) -> None:
        if self.indexed is not None:
            for done in reversed(self.added):
                self.indexed.undo(done)
        self.added.clear()


# The pools a worker process read, per database and topic, from one batch to the next.
_KEPT: weakref.WeakKeyDictionary[Engine, dict[str, _KeptPool]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Judged:
    """A complaint's incident verdicts, worked out before the write lock against the pool
    read ahead (`judge_ahead`); under the lock only the cases added since are judged."""

    new: IncidentCandidate
    pool: _Pool
    verdicts: dict[int, float | None]


@dataclass(frozen=True)
class PoolsAhead:
    pools: dict[str, _Pool]
    last_id: int  # the largest case id when they were read
    # By idempotency key: the verdicts judged ahead (SQLite only, see `judge_ahead`).
    judged: dict[str, _Judged] = field(default_factory=dict)


def read_pools_ahead(
    session: Session, complaints: Iterable[Complaint], rules: GroupingRules
) -> PoolsAhead:
    """The pools a batch's new cases will be compared with, from what this worker read for
    its last batches: a topic's pool is read whole every few seconds, and in between only the
    cases made since (ids above the largest there was) are read, in one query for every
    topic. Four topics of 350 cases each, read for every batch, were the largest part of a
    worker's time.

    A case already kept that changed since its pool was read (an operator closed it, moved
    it to another topic or linked it) is seen as it was for at most POOL_REFRESH_SECONDS.
    That is safe: the incident a case is linked into is looked up in the write
    transaction first (`_root_still_open`), so a case is never linked into an incident
    that is closed, moved or linked itself. On PostgreSQL ids are not given in commit
    order, so a case another worker was storing while a pool was read may join it only
    at the next whole read; on SQLite (one writer) it is always caught up.

    On SQLite this runs before the batch's write transaction, which holds the database's
    one write lock from its first statement (workers.db, `immediate`): `catch_up_pools`,
    under the lock, adds the cases committed in between."""
    wanted: dict[str, datetime] = {}
    for complaint in complaints:
        if complaint.confidential:
            continue  # never linked
        since = _window_start(complaint, rules)
        wanted[complaint.topic] = min(since, wanted.get(complaint.topic, since))
    if not wanted:
        return PoolsAhead({}, 0)
    engine = session.get_bind()
    kept = _KEPT.setdefault(engine, {}) if isinstance(engine, Engine) else {}
    for undone in kept.values():
        undone.undo_batch()
    # First: whatever a later query reads has an id of at most this, so a case committed
    # in between is caught up next time, not read twice.
    last_id = session.scalar(select(func.max(models.Case.id))) or 0
    now = time.monotonic()
    caught: list[str] = []
    for topic, since in wanted.items():
        known = kept.get(topic)
        if known and now - known.read_at < POOL_REFRESH_SECONDS and known.since <= since:
            caught.append(topic)
            continue
        pool = _load_pool(session, topic, since, upto=last_id)
        kept[topic] = _KeptPool(topic, pool.since, pool.cases, now, last_id)
    if caught:
        _catch_up_kept(session, [kept[topic] for topic in caught], last_id)
    pools = {}
    for topic in wanted:
        reused = kept[topic]
        if reused.indexed is None:
            reused.indexed = _Indexed.of(reused.cases)
        pools[topic] = _Pool(reused.since, list(reused.cases), indexed=reused.indexed, kept=reused)
    return PoolsAhead(pools, last_id)


def _catch_up_kept(session: Session, kept: list[_KeptPool], upto: int) -> None:
    """Kept pools with the cases made since each was read."""
    _catch_up(session, {pool.topic: pool for pool in kept}, upto=upto, trim=True)
    for pool in kept:
        pool.last_id = upto


def _catch_up(
    session: Session,
    pools: Mapping[str, _Pool | _KeptPool],
    *,
    after: int | None = None,
    upto: int | None = None,
    trim: bool,
) -> None:
    """Add to pools, in one query for all of them, the open cases with ids above `after`
    (for a kept pool: above its own `last_id`) and at most `upto`, recent enough for
    them; newest first. `trim`: keep as many as a whole read would, the newest."""
    above = {
        topic: pool.last_id if isinstance(pool, _KeptPool) else after or 0
        for topic, pool in pools.items()
    }
    lowest = min(above.values())
    if upto is not None and upto <= lowest:
        return
    since = min(pool.since for pool in pools.values())
    rows, first_texts = _read_pool(session, list(pools), since, lowest, upto=upto)
    newer: dict[str, list[_Candidate]] = {}
    for row, candidate in zip(rows, _candidates(rows, first_texts), strict=True):
        if row.id > above[row.topic] and candidate.created_at >= pools[row.topic].since:
            newer.setdefault(row.topic, []).append(candidate)
    for topic, cases in newer.items():
        pool = pools[topic]
        added = len(cases)
        if isinstance(pool, _Pool):
            pool.fresh = [*cases, *pool.fresh]
            pool.indexed = pool.kept = None
        cases.extend(pool.cases)
        cases.sort(key=attrgetter("created_at"), reverse=True)
        if isinstance(pool, _KeptPool) and pool.indexed is not None:
            _index_caught_up(pool, cases, added)
        pool.cases = cases[: CANDIDATE_LIMIT + POOL_MARGIN] if trim else cases


def _index_caught_up(pool: _KeptPool, cases: list[_Candidate], added: int) -> None:
    """A kept pool's index with the `added` cases caught up, now first in `cases`: put
    before the others, the oldest first, if they are all newer than the pool's cases;
    else made again when next used."""
    indexed = pool.indexed
    assert indexed is not None
    if any(candidate is not old for candidate, old in zip(cases[added:], pool.cases, strict=False)):
        pool.indexed = None  # a caught-up case among older ones (PostgreSQL: ids not in
        return  # commit order)
    for first in range(added - 1, -1, -1):
        indexed.add_newest(cases[first:])


def catch_up_pools(session: Session, ahead: PoolsAhead) -> None:
    """In the write transaction, before any case is made: give it the pools read ahead,
    each with the cases committed since it was read. SQLite gives ids in commit order (one
    writer at a time, and cases are never deleted), so those are the ids above the largest
    there was: one query for every pool."""
    use_pools(session, ahead)
    if ahead.pools:
        _catch_up(session, ahead.pools, after=ahead.last_id, trim=False)


def use_pools(session: Session, ahead: PoolsAhead) -> None:
    """The pools this transaction's new cases are compared with."""
    pools: dict[str, _Pool] = session.info.setdefault("incident_pools", {})
    pools.update(ahead.pools)
    if ahead.judged:
        session.info["incident_verdicts"] = ahead.judged


def judge_ahead(
    ahead: PoolsAhead,
    complaints: Iterable[Complaint],
    reporter_ids: Mapping[str, int],
    rules: GroupingRules,
) -> None:
    """Judge each complaint against the incidents of the pool read ahead, before the write
    lock (SQLite, where a batch holds the database's one write lock from its first
    statement): comparing a complaint with its ~300 candidates was a quarter of a worker's
    time, all of it under the lock. Under the lock `link_incident` judges only the cases
    added since and adds up the verdicts (`merge_verdicts`), then checks the chosen
    incident as it is now (`_root_still_open`).

    `reporter_ids`: the known reporters' ids by idempotency key, whose own cases are left
    out as under the lock. A complaint that turns out not to be a new case (a follow-up, a
    burst) simply does not use its verdicts."""
    for complaint in complaints:
        pool = ahead.pools.get(complaint.topic)
        if pool is None or complaint.confidential:
            continue
        since = _window_start(complaint, rules)
        if pool.since > since:
            continue  # a pool read again under the lock: judged there
        new = IncidentCandidate.from_complaint(complaint)
        reporter_id = reporter_ids.get(complaint.idempotency_key)
        ahead.judged[complaint.idempotency_key] = _Judged(
            new, pool, _verdicts(pool, new, since, None, None, reporter_id, rules.link)
        )


def _members(
    cases: list[_Candidate],
    since: datetime,
    key: int | None,
    reporter: models.Reporter | None,
    reporter_id: int | None,
) -> dict[int, list[IncidentCandidate]]:
    """The reports of `cases` by the incident they are part of: at most CANDIDATE_LIMIT,
    newest first, none older than `since`, none of the reporter's own (by the row for a
    case made in this transaction, else by its id), and not the case `key` (if any) itself.
    Hundreds of candidates per complaint, so this loop is kept plain."""
    members: defaultdict[int, list[IncidentCandidate]] = defaultdict(list)
    taken = 0
    for candidate in cases:
        if candidate.created_at < since:
            break  # newest first: the rest are older still
        made_by = candidate.reporter
        if candidate.id == key or (
            (reporter_id is not None and candidate.reporter_id == reporter_id)
            if made_by is None
            else made_by is reporter
        ):
            continue
        members[candidate.root].append(candidate.report)
        taken += 1
        if taken == CANDIDATE_LIMIT:
            break
    return members


def _read_pool(
    session: Session,
    topics: list[str],
    since: datetime,
    after: int | None = None,
    *,
    upto: int | None = None,
) -> tuple[list[Any], dict[int, str]]:
    """The topics' open cases since `since` (and with an id above `after`, and at most
    `upto`), newest first, and the first words of those not met before: at most a pool's
    worth for each topic."""
    Case = models.Case
    conditions = [
        Case.topic.in_(topics) if len(topics) > 1 else Case.topic == topics[0],
        Case.confidential.is_(False),
        Case.status.in_(OPEN_STATUSES),
        Case.created_at >= since,
    ]
    if after is not None:
        conditions.append(Case.id > after)
    if upto is not None:
        conditions.append(Case.id <= upto)
    # The times as the database gives them (no datetime parsed per row on SQLite): they
    # are a cache key here, and a case's creation is parsed once, when first read.
    rows = session.execute(
        select(
            Case.id,
            Case.topic,
            Case.lat,
            Case.lon,
            Case.address,
            type_coerce(Case.created_at, String).label("created_at"),
            type_coerce(Case.updated_at, String).label("updated_at"),
            models.CaseLink.into_case_id,
            Case.reporter_id,
        )
        .outerjoin(models.CaseLink, models.CaseLink.case_id == Case.id)
        .where(*conditions)
        .order_by(Case.created_at.desc())
        .limit((CANDIDATE_LIMIT + POOL_MARGIN) * len(topics))
    ).all()
    missing = [row.id for row in rows if tuple(row[:7]) not in _CANDIDATES]
    first_texts: dict[int, str] = {}
    if missing:
        for case_id, body in session.execute(
            select(models.Message.case_id, models.Message.text)
            .where(models.Message.case_id.in_(missing), models.Message.direction == "in")
            .order_by(models.Message.case_id, models.Message.received_at, models.Message.id)
        ):
            if case_id is not None:
                first_texts.setdefault(case_id, body)
        if len(_CANDIDATES) + len(missing) > _CANDIDATES_MAX:
            _CANDIDATES.clear()
    return list(rows), first_texts


def link_incident(
    session: Session, case: models.Case, complaint: Complaint, rules: GroupingRules
) -> None:
    """Link a new case to the incident other reporters already opened, if there is one:
    among the CANDIDATE_LIMIT newest open cases of its topic from other reporters."""
    if case.confidential:
        return
    since = _window_start(complaint, rules)
    pool = _pool(session, case.topic, since)
    reporter, key = case.reporter, pool.key(case)
    # `reporter.id` read once: an ORM attribute costs.
    reporter_id = reporter.id
    new = IncidentCandidate.from_complaint(complaint)
    judged: dict[str, _Judged] = session.info.get("incident_verdicts") or {}
    ahead = judged.get(complaint.idempotency_key)
    if ahead is not None and ahead.pool is pool and ahead.new == new:
        # Judged before the lock against the pool read ahead: only what was added since.
        members = _members(pool.fresh, since, key, reporter, reporter_id)
        new = ahead.new  # its analysis is made already
        verdicts = merge_verdicts(dict(ahead.verdicts), incident_verdicts(new, members, rules.link))
    else:
        verdicts = _verdicts(pool, new, since, key, reporter, reporter_id, rules.link)
    linked = _choose_and_link(session, case, verdicts, pool)
    # This batch's later complaints see this case as a candidate too.
    report = IncidentCandidate.from_values(
        {
            "topic": case.topic,
            "text": complaint.text,
            "lat": case.lat,
            "lon": case.lon,
            "address": case.address,
            "received_at": _aware(case.created_at),
        }
    )
    root = linked if linked is not None else key
    made = _Candidate(key, reporter.id, _aware(case.created_at), report, root, reporter)
    pool.cases.insert(0, made)
    pool.fresh.insert(0, made)
    if pool.indexed is not None:
        done = pool.indexed.add_newest(pool.cases)
        if pool.kept is not None:
            pool.kept.added.append(done)


_ROOTS_NOW = (
    select(models.Case.id, models.Case.status, models.Case.topic, models.CaseLink.into_case_id)
    .outerjoin(models.CaseLink, models.CaseLink.case_id == models.Case.id)
    .where(models.Case.id.in_(bindparam("roots", expanding=True)))
)
# How many of each pool's incidents are looked up with the first one asked about.
ROOTS_AT_ONCE = 16


def _root_still_open(session: Session, pool: _Pool, root: int, topic: str) -> bool:
    """Whether an incident's first case may still be linked into, as it is now: open, of
    this topic, and not linked into another case itself. Pools are kept between batches
    (`read_pools_ahead`), and a root may be older than its pool: it is asked about once
    per batch. With it, the newest ROOTS_AT_ONCE incidents of every pool of the batch are
    looked up in the same query: a batch of sixty complaints links into a few incidents
    of each of its topics, nearly always among the newest. One query per pool, of 64
    incidents each, was eight queries per batch and eight lookups per complaint on
    PostgreSQL; a miss asks again."""
    usable = pool.roots_open.get(root)
    if usable is None:
        asking = [(pool, topic, _roots_to_ask(pool, root))]
        pools: dict[str, _Pool] = session.info.get("incident_pools") or {}
        asking += [
            (other, other_topic, _roots_to_ask(other, None))
            for other_topic, other in pools.items()
            if other is not pool
        ]
        ids = sorted({other for _, _, asked in asking for other in asked})
        # On the connection: the batch's new rows need no flush, and no ORM statement is
        # built for what may be asked for most complaints of a batch.
        found = {row.id: row for row in session.connection().execute(_ROOTS_NOW, {"roots": ids})}
        for asked_pool, asked_topic, asked in asking:
            for other in asked:
                row = found.get(other)
                asked_pool.roots_open[other] = (
                    row is not None
                    and row.status in OPEN_STATUSES
                    and row.topic == asked_topic
                    and row.into_case_id is None
                )
        usable = pool.roots_open[root]
    return usable


def _roots_to_ask(pool: _Pool, first: int | None) -> list[int]:
    """`first` (if any), then the pool's newest incidents not asked about yet: at most
    ROOTS_AT_ONCE in all. A batch's own new cases (keys below zero) are never asked."""
    asked = {} if first is None else {first: None}  # in order, newest first
    for candidate in pool.cases:
        if len(asked) >= ROOTS_AT_ONCE:
            break
        other = candidate.root
        if other > 0 and other not in pool.roots_open:
            asked[other] = None
    return list(asked)


def _choose_and_link(
    session: Session, case: models.Case, verdicts: dict[int, float | None], pool: _Pool
) -> int | None:
    """The key of the incident's first case the new case was linked into, if any."""
    while True:
        best = best_incident(verdicts)
        if best is None:
            return None
        root = best[1]
        if root in pool.made or _root_still_open(session, pool, root, case.topic):
            break
        del verdicts[root]  # closed or moved meanwhile: the next best, if any
    made = pool.made.get(root)
    later = rows_later(session)
    if later is not None:
        later.links.append((case, made if made is not None else root, round(best[0], 3)))
        return root
    detail: dict[str, object] = {"ticket": case.ticket, "score": round(best[0], 3)}
    link = models.CaseLink(case=case, actor="system")
    audit = models.AuditEvent(actor="system", action="incident_link", note=None, detail=detail)
    if made is not None:  # an incident this batch opened: linked by the row, not its id
        link.into_case = audit.case = made
    else:
        link.into_case_id = audit.case_id = root
    session.add_all((link, audit))
    # The note carries the new case's ticket, which may be a stand-in until the batch is
    # numbered (workers.store._number_tickets). Hold it till then: a row that was flushed
    # and that nothing holds leaves the session, and its number could not be filled in.
    session.info.setdefault("holding", []).append(audit)
    return root
