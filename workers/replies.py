"""The reply job: deliveries out to the reporter's channel, or to the outbox.

A delivery is sent only while it is `queued`; once a provider accepted it, a retried
job finds it `sent` and does nothing, so one inbound message gets one answer.

What a provider answers decides what happens next:

- accepted: the delivery is `sent`, with the provider's message id;
- refused for good (invalid number, unsubscribed, template unknown, mailbox does not
  exist): `failed`, with the provider's error code, after that one attempt;
- not now (5xx, throttled, timed out, unreachable): the sender raises `SendDeferred`,
  the delivery goes back to `queued` with the reason, and RQ retries the job after the
  next of ADUAN_SEND_RETRY_INTERVALS (longer if the provider asked for it with
  `Retry-After`). When the last retry fails too, the delivery is `failed` with
  "gave up after N attempts: <reason>", and the job waits in RQ's failed registry:
  `aduan failed list` shows it, `aduan failed requeue` sends it again.

Errors recorded here are codes and exception names only: a provider's own text may
quote the recipient's number or address.

`requeue_stranded` picks up deliveries no job will ever send (committed while the queue
was down, or claimed by a worker that died mid-send); `sweep` runs it at most once a
minute across all workers, for a worker's maintenance hook.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

from rq import Retry, get_current_job
from rq.job import Job
from sqlalchemy import Connection, Table, and_, bindparam, func, or_, select, text, update

import workers.senders.registry  # noqa: F401 - registers the provider senders
from workers import models
from workers.context import Context, current
from workers.db import READ_ONLY
from workers.senders import Outgoing, SendDeferred, SendResult, sender_for

log = logging.getLogger("aduan.replies")

GAVE_UP = "gave up after"  # the error of a delivery whose job ran out of retries
# A provider's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER = 600
# Where the job that will send a delivery is noted, for the sweep to check. By queue:
# deployments sharing one Redis have queues, and delivery ids, of their own.
JOB_KEY_TTL = 7 * 24 * 3600
# A delivery still `queued`, never tried and with no job after this long was never queued.
STRANDED_AFTER = timedelta(minutes=5)
# No send takes this long (every sender has a timeout): its worker is gone.
SENDING_STALE_AFTER = timedelta(minutes=10)
SWEEP_LOCK = "aduan:sweep:deliveries:{}"
SWEEP_EVERY_SECONDS = 60
# Deliveries claimed, sent and recorded together: a provider takes hundreds of
# milliseconds to answer, and one at a time a worker would send a few replies a second.
# With Twilio answering in 300 ms, 32 at once is about 100 replies a second per reply
# job (8 was 27). A worker that dies mid-send leaves at most this many "may have gone out"
# for each of its reply lanes (workers.worker.ReplyLane) in a job.
SEND_GROUP = 32
# Reply jobs a worker runs at once, each on a ReplyLane (workers.worker).
REPLY_LANES = 8
# Sends a worker has in flight at most: a whole group for each of its lanes. Shared by
# the lanes, SEND_GROUP threads capped a worker at about 100 replies a second with Twilio
# answering in 300 ms, however many lanes were open, and replies queued behind each other.
SEND_THREADS = SEND_GROUP * REPLY_LANES


def job_key(queue_name: str, delivery_id: int) -> str:
    return f"aduan:delivery-job:{queue_name}:{delivery_id}"


def enqueue_deliveries(context: Context, ids: Iterable[int], *, swept: bool = False) -> None:
    """Queue the reply job for these committed deliveries, with retries and backoff."""
    ids = list(ids)
    if not ids:
        return
    intervals = list(context.settings.send_retry_intervals)
    job_id = f"send-{'-'.join(str(i) for i in ids[:8])}-{len(ids)}"
    if swept:
        job_id += f"-swept-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    context.reply_queue.enqueue(
        send_deliveries,
        ids,
        retry=Retry(max=len(intervals), interval=intervals),
        job_id=job_id,
    )
    pipe = context.redis.pipeline(transaction=False)
    for delivery_id in ids:
        pipe.set(job_key(context.settings.queue_name, delivery_id), job_id, ex=JOB_KEY_TTL)
    pipe.execute()


def _recipient(context: Context, reporter: Any, channel: str) -> str | None:
    """`reporter`: a Reporter, or a row with its `confidential`, `sealed_contact`,
    `address` and `email`."""
    if reporter.confidential and reporter.sealed_contact:
        contact = context.crypto.open(reporter.sealed_contact)
        address, email = contact.get("address"), contact.get("email")
    else:
        address, email = reporter.address, reporter.email
    if channel == "email":
        return str(email or address) if (email or address) else None
    return str(address) if address else None


def send_deliveries(ids: list[int]) -> dict[str, int]:
    """RQ job: send each queued delivery once.

    Every delivery of the batch is tried, even after one could not be sent; the job then
    fails (and is retried) if any could not, naming the first reason.

    The deliveries go out in groups of SEND_GROUP, sent at once. One write transaction
    records what became of a group and claims the next, so a worker that dies leaves at
    most one group in doubt, and no row lock is held while a provider answers.
    """
    context = current()
    job = get_current_job()
    # Outside RQ, or on a job with no retries left (the last one, or a requeued one).
    final = job is None or not job.retries_left
    counts: dict[str, int] = {}
    deferred: list[tuple[int, SendDeferred]] = []
    prepared = _prepare(context, ids)
    # Not claimable when read: sent already, or by another job.
    skipped = sum(1 for delivery_id in ids if delivery_id not in prepared)
    pending = [delivery_id for delivery_id in ids if delivery_id in prepared]
    unrecorded: list[tuple[int, SendResult]] = []
    try:
        for start in range(0, len(pending), SEND_GROUP):
            group = pending[start : start + SEND_GROUP]
            claimed = _record_and_claim(context, unrecorded, group)
            unrecorded = []
            skipped += len(group) - len(claimed)
            sending = [(i, *prepared[i]) for i in group if i in claimed]
            for delivery_id, (result, not_sent) in _send_all(context, sending, final):
                unrecorded.append((delivery_id, result))
                if not_sent is not None:
                    deferred.append((delivery_id, not_sent))
                counts[result.status] = counts.get(result.status, 0) + 1
    finally:
        if unrecorded:
            _record_and_claim(context, unrecorded, [])
    if skipped:
        counts["skipped"] = skipped
    if deferred:
        if job is not None and not final:
            waits = [exc.retry_after for _, exc in deferred if exc.retry_after]
            if waits:
                _wait_at_least(job, max(waits))
        first_id, first = deferred[0]
        more = f" (and {len(deferred) - 1} more)" if len(deferred) > 1 else ""
        raise SendDeferred(f"delivery {first_id}: {first.error}{more}", first.retry_after)
    return counts


@cache
def _senders() -> ThreadPoolExecutor:
    """The worker's threads for its lanes' sends, started as they are needed."""
    return ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="aduan-send")


def _send_all(
    context: Context, sending: list[tuple[int, Outgoing | None, int]], final: bool
) -> list[tuple[int, tuple[SendResult, SendDeferred | None]]]:
    """Each delivery's `_send`, all at once; in the order given."""

    def send(item: tuple[int, Outgoing | None, int]) -> tuple[SendResult, SendDeferred | None]:
        _, outgoing, attempts = item
        return _send(context, outgoing, attempts, final=final)

    if len(sending) <= 1:
        return [(item[0], send(item)) for item in sending]
    return list(zip((item[0] for item in sending), _senders().map(send, sending), strict=True))


def _wait_at_least(job: Job, seconds: float) -> None:
    """Make this job's next retry wait at least `seconds`, as the provider asked.

    RQ reads the next interval from the job (the same object the worker handles the
    failure with) when it schedules the retry, and saves it with the job.
    """
    intervals = list(job.retry_intervals or [0])
    index = max(len(intervals) - int(job.retries_left or 0), 0)
    if index >= len(intervals):
        return
    intervals[index] = max(intervals[index], min(math.ceil(seconds), MAX_RETRY_AFTER))
    job.retry_intervals = intervals


_DELIVERIES = cast(Table, models.Delivery.__table__)
_REPORTERS = cast(Table, models.Reporter.__table__)


def _claimable() -> Any:
    """Queued, or given up on after its retries (`aduan failed requeue` sends it again)."""
    return or_(
        _DELIVERIES.c.status == "queued",
        and_(_DELIVERIES.c.status == "failed", _DELIVERIES.c.error.startswith(GAVE_UP)),
    )


def _prepare(context: Context, ids: list[int]) -> dict[int, tuple[Outgoing | None, int]]:
    """What each delivery would send, and its attempts so far, read in two queries. Read
    before the claim: nothing here changes once a delivery is written, and the claim
    alone decides whether it goes out. Only read: on SQLite it takes no write lock. Rows,
    not ORM objects: a job reads a whole batch's replies."""
    d, r = _DELIVERIES.c, _REPORTERS.c
    with context.engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})
        deliveries = connection.execute(
            select(
                d.id,
                d.channel,
                d.body,
                d.sealed,
                d.subject,
                d.in_reply_to,
                d.language,
                d.case_id,
                d.reporter_id,
                d.kind,
                d.attempts,
            ).where(d.id.in_(ids), _claimable())
        ).all()
        reporter_ids = {row.reporter_id for row in deliveries if row.reporter_id is not None}
        reporters = {
            row.id: row
            for row in connection.execute(
                select(r.id, r.confidential, r.sealed_contact, r.address, r.email).where(
                    r.id.in_(reporter_ids)
                )
            )
        }
    prepared: dict[int, tuple[Outgoing | None, int]] = {}
    for delivery in deliveries:
        reporter = reporters.get(delivery.reporter_id) if delivery.reporter_id else None
        to = _recipient(context, reporter, delivery.channel) if reporter else None
        outgoing = None
        if to is not None:
            body = context.crypto.open(delivery.body) if delivery.sealed else delivery.body
            outgoing = Outgoing(
                delivery.id,
                delivery.channel,
                to,
                str(body),
                delivery.subject,
                delivery.in_reply_to,
                delivery.language,
                case_id=delivery.case_id,
                reporter_id=delivery.reporter_id,
                kind=delivery.kind,
            )
        prepared[delivery.id] = (outgoing, delivery.attempts)
    return prepared


def _send(
    context: Context, outgoing: Outgoing | None, attempts: int, *, final: bool
) -> tuple[SendResult, SendDeferred | None]:
    """The provider's answer, and the reason when it was not sent but may be later."""
    if outgoing is None:
        return SendResult(status="failed", error="no address to reply to"), None
    try:
        result = sender_for(context, outgoing.channel).send(outgoing)
    except Exception as exc:
        # Not now: put it back, with the reason, for the retried job to send; on the
        # last try, record that it was given up on.
        if isinstance(exc, SendDeferred):
            deferred = exc
        else:
            deferred = SendDeferred(f"send raised {type(exc).__name__}")
            deferred.__cause__ = exc
        log.warning(
            "delivery %s on %s not sent: %s", outgoing.delivery_id, outgoing.channel, deferred.error
        )
        if final:
            error = f"{GAVE_UP} {attempts + 1} attempts: {deferred.error}"
            return SendResult(status="failed", error=error), deferred
        return SendResult(status="queued", error=deferred.error), deferred
    log.info("delivery %s on %s: %s", outgoing.delivery_id, outgoing.channel, result.status)
    return result, None


# What became of each delivery of a group, in one statement run for every one of them (an
# executemany, not a statement each); the provider and its id stay when a send gave none.
_RECORD = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("delivery_id", type_=_DELIVERIES.c.id.type))
    .values(
        attempts=_DELIVERIES.c.attempts + 1,
        status=bindparam("new_status", type_=_DELIVERIES.c.status.type),
        error=bindparam("new_error", type_=_DELIVERIES.c.error.type),
        provider=func.coalesce(
            bindparam("new_provider", type_=_DELIVERIES.c.provider.type), _DELIVERIES.c.provider
        ),
        provider_id=func.coalesce(
            bindparam("new_provider_id", type_=_DELIVERIES.c.provider_id.type),
            _DELIVERIES.c.provider_id,
        ),
        updated_at=bindparam("now", type_=_DELIVERIES.c.updated_at.type),
    )
)


# PostgreSQL: a group's results in one statement, the columns as arrays, instead of one
# UPDATE per delivery (a statement each for the server to bind and run).
_RECORD_ALL = text(
    "UPDATE deliveries AS d SET attempts = d.attempts + 1, status = v.status, "
    "error = v.error, provider = coalesce(v.provider, d.provider), "
    "provider_id = coalesce(v.provider_id, d.provider_id), updated_at = :now "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:statuses AS varchar[]), "
    "CAST(:errors AS text[]), CAST(:providers AS varchar[]), "
    "CAST(:provider_ids AS varchar[])) AS v(id, status, error, provider, provider_id) "
    "WHERE d.id = v.id"
).bindparams(bindparam("now", type_=_DELIVERIES.c.updated_at.type))


def _record(connection: Connection, done: list[tuple[int, SendResult]], now: datetime) -> None:
    """What became of each delivery of `done` (id, result)."""
    rows = [
        (delivery_id, r.status, r.error, r.provider or None, r.provider_id or None)
        for delivery_id, r in done
    ]
    if connection.dialect.name == "postgresql":
        arrays = ("ids", "statuses", "errors", "providers", "provider_ids")
        columns = zip(arrays, zip(*rows, strict=True), strict=True)
        connection.execute(_RECORD_ALL, {**{k: list(v) for k, v in columns}, "now": now})
        return
    names = ("delivery_id", "new_status", "new_error", "new_provider", "new_provider_id")
    connection.execute(
        _RECORD, [{**dict(zip(names, row, strict=True)), "now": now} for row in rows]
    )


def _record_and_claim(
    context: Context, done: list[tuple[int, SendResult]], claim: list[int]
) -> set[int]:
    """In one transaction: record what became of the deliveries `done` (id, result), and
    claim the deliveries `claim` for sending; the ids claimed. Of two workers holding the
    same id, only the one whose UPDATE matched sends; no row lock is held while the
    provider answers."""
    claimed: set[int] = set()
    with context.engine.begin() as connection:
        now = datetime.now(UTC)
        if done:
            _record(connection, done, now)
        if claim:
            claimed = set(
                connection.scalars(
                    update(_DELIVERIES)
                    .where(_DELIVERIES.c.id.in_(claim), _claimable())
                    .values(status="sending", updated_at=now)
                    .returning(_DELIVERIES.c.id)
                )
            )
    return claimed


STOPPED_WHILE_SENDING = "the worker stopped while sending: it may have gone out; not sent again"


def requeue_stranded(
    context: Context,
    *,
    stranded_after: timedelta = STRANDED_AFTER,
    sending_stale_after: timedelta = SENDING_STALE_AFTER,
    limit: int = 500,
) -> list[int]:
    """Queue again the deliveries no job will ever send; their ids.

    - `queued`, never tried, older than `stranded_after`, and the job noted for it is
      gone (or none was ever noted): it was committed while the queue was down. Sent.
    - `sending` for longer than any send takes: the worker that claimed it died mid-send,
      and the provider may have taken it. It is NOT sent again (a reporter must never be
      answered twice): it becomes `failed`, saying so, in the console's failed outbox,
      where an operator can check with the reporter and reply by hand.

    A delivery whose job is waiting, scheduled for a retry, running, or in the failed
    registry (for `aduan failed requeue`) is left to that job.
    """
    now = datetime.now(UTC)
    with context.sessions() as session:
        queued = session.scalars(
            select(models.Delivery.id)
            .where(
                models.Delivery.status == "queued",
                models.Delivery.attempts == 0,
                models.Delivery.updated_at < now - stranded_after,
            )
            .order_by(models.Delivery.id)
            .limit(limit)
        ).all()
    stranded = [i for i in queued if not _has_job(context, i)]
    with context.sessions() as session, session.begin():
        stale = session.scalars(
            select(models.Delivery.id)
            .where(
                models.Delivery.status == "sending",
                models.Delivery.updated_at < now - sending_stale_after,
            )
            .order_by(models.Delivery.id)
            .limit(limit)
        ).all()
        if stale:
            session.execute(
                update(models.Delivery)
                .where(models.Delivery.id.in_(stale), models.Delivery.status == "sending")
                .values(
                    status="failed",
                    error=STOPPED_WHILE_SENDING,
                    updated_at=now,
                )
            )
    if stale:
        log.warning("%d deliveries were interrupted while sending; marked failed", len(stale))
    found = sorted(stranded)
    for start in range(0, len(found), 50):
        enqueue_deliveries(context, found[start : start + 50], swept=True)
    if found:
        log.warning("queued %d stranded deliveries again", len(found))
    return found


def _has_job(context: Context, delivery_id: int) -> bool:
    job_id = context.redis.get(job_key(context.settings.queue_name, delivery_id))
    if job_id is None:
        return False
    name = job_id.decode() if isinstance(job_id, bytes) else str(job_id)
    return bool(Job.exists(name, connection=context.redis))


def sweep(context: Context) -> list[int]:
    """`requeue_stranded`, at most once every SWEEP_EVERY_SECONDS across all workers of
    the queue: cheap enough to call from every worker's maintenance task."""
    lock = SWEEP_LOCK.format(context.settings.queue_name)
    if not context.redis.set(lock, "1", nx=True, ex=SWEEP_EVERY_SECONDS):
        return []
    return requeue_stranded(context)
