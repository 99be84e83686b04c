"""Re-sealing the case store with the newest encryption key (`aduan keys rotate`).

ADUAN_ENCRYPTION_KEY lists keys newest first; any of them opens a sealed value, the
first seals new ones. Rotation re-seals every stored value with the first key, so that
the older keys can be removed from the configuration afterwards.

It works in batches, each committed on its own, so a rotation that is interrupted
(a deploy, a lost connection) is simply run again: values already sealed with the newest
key are recognised and left alone. Each row is rewritten only if it still holds the
token that was read (compare and set), so a gateway or worker writing at the same time
is never overwritten with a stale value.

The lookup hashes (`reporters.address_hash`, `cases.receipt_hash`) are keyed with
ADUAN_SECRET_KEY, not with the encryption key: rotating the encryption key leaves them,
and so finding a returning reporter and checking a receipt code, untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import ColumnElement, Engine, select, true, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from workers import models
from workers.crypto import Crypto

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class SealedColumn:
    """One place in the case store that holds sealed values."""

    label: str
    model: type[models.Base]
    column: InstrumentedAttribute[Any]
    only: Callable[[], ColumnElement[bool]] = field(default=lambda: true())


# Every column written with `Crypto.seal`. A new sealed column must be added here, or
# removing an old key makes its values unreadable; tests/test_key_rotation.py checks
# that every `sealed_*` column of the models is listed.
SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("reporters.sealed_contact", models.Reporter, models.Reporter.sealed_contact),
    SealedColumn("cases.sealed_receipt", models.Case, models.Case.sealed_receipt),
    SealedColumn("messages.sealed_raw", models.Message, models.Message.sealed_raw),
    SealedColumn(
        "deliveries.body",
        models.Delivery,
        models.Delivery.body,
        lambda: models.Delivery.sealed.is_(True),
    ),
)


@dataclass
class Counts:
    """What rotation did to one column."""

    rotated: int = 0
    current: int = 0  # already sealed with the newest key
    unreadable: list[int] = field(default_factory=list)  # ids no configured key opens

    @property
    def seen(self) -> int:
        return self.rotated + self.current + len(self.unreadable)


def rotate_store(
    engine: Engine,
    crypto: Crypto,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[str, Counts], None] | None = None,
) -> dict[str, Counts]:
    """Re-seal every sealed value with the newest key; one transaction per batch."""
    results: dict[str, Counts] = {}
    for target in SEALED_COLUMNS:
        counts = Counts()
        results[target.label] = counts
        last_id = 0
        while True:
            with Session(engine) as session, session.begin():
                last_id = _rotate_batch(session, crypto, target, last_id, batch_size, counts)
            if progress is not None:
                progress(target.label, counts)
            if last_id < 0:
                break
    return results


def _rotate_batch(
    session: Session,
    crypto: Crypto,
    target: SealedColumn,
    after: int,
    batch_size: int,
    counts: Counts,
) -> int:
    """Rotate the next batch of rows with an id above `after`; the last id seen, or -1
    when there were no more rows."""
    model: Any = target.model
    rows = session.execute(
        select(model.id, target.column)
        .where(model.id > after, target.column.is_not(None), target.only())
        .order_by(model.id)
        .limit(batch_size)
    ).all()
    if not rows:
        return -1
    for row_id, token in rows:
        if crypto.is_current(token):
            counts.current += 1
            continue
        try:
            fresh = crypto.rotate(token)
        except ValueError:
            counts.unreadable.append(int(row_id))
            continue
        session.execute(
            update(model)
            .where(model.id == row_id, target.column == token)
            .values({target.column.key: fresh})
        )
        counts.rotated += 1
    return int(rows[-1][0])


def _sealed_tokens(value: Any) -> list[str]:
    """The sealed complaints inside a queued payload (`{"sealed": token, ...}` items)."""
    if isinstance(value, dict):
        token = value.get("sealed")
        found = [token] if isinstance(token, str) else []
        return found + [t for v in value.values() for t in _sealed_tokens(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _sealed_tokens(v)]
    return []


def stale_in_spool(directory: Path, crypto: Crypto) -> int:
    """Spooled complaints (written while Redis was down) still sealed with an older key.

    They are not rewritten here: the gateway's drainer owns the spool and moves them
    into the queue once Redis answers, where the store job opens them with any key."""
    if not directory.is_dir():
        return 0
    stale = 0
    for path in directory.glob("*.json"):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        stale += sum(1 for t in _sealed_tokens(data) if not crypto.is_current(t))
    return stale


def stale_in_queue(connection: redis.Redis, queue_name: str, crypto: Crypto) -> int:
    """Queued and failed jobs whose sealed complaints need an older key to be opened.

    A failed job may sit in the failed registry for a long time; requeued after the old
    key is gone, it could never be stored. So an operator is told before removing it."""
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    ids = list(queue.get_job_ids()) + list(FailedJobRegistry(queue=queue).get_job_ids())
    stale = 0
    for job in Job.fetch_many(ids, connection=connection, serializer=JSONSerializer):
        if job is None:
            continue
        try:
            args = job.args
        except (DeserializationError, ValueError):
            continue  # an unreadable job holds nothing that can be checked
        stale += sum(1 for t in _sealed_tokens(list(args)) if not crypto.is_current(t))
    return stale
