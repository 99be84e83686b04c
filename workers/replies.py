"""The reply job: deliveries out to the reporter's channel, or to the outbox.

A delivery is sent only while it is `queued`; once a provider accepted it, a retried
job finds it `sent` and does nothing, so one inbound message gets one answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rq import Retry
from sqlalchemy import CursorResult, update

import workers.senders.registry  # noqa: F401 - registers the provider senders
from workers import models
from workers.context import Context, current
from workers.senders import Outgoing, SendResult, sender_for

log = logging.getLogger("aduan.replies")


def enqueue_deliveries(context: Context, ids: Iterable[int]) -> None:
    ids = list(ids)
    if ids:
        context.queue.enqueue(
            send_deliveries,
            ids,
            retry=Retry(max=8, interval=[1, 2, 5, 10, 30, 60, 120, 300]),
            job_id=f"send-{'-'.join(str(i) for i in ids[:8])}-{len(ids)}",
        )


def _recipient(context: Context, reporter: models.Reporter, channel: str) -> str | None:
    if reporter.confidential and reporter.sealed_contact:
        contact = context.crypto.open(reporter.sealed_contact)
        address, email = contact.get("address"), contact.get("email")
    else:
        address, email = reporter.address, reporter.email
    if channel == "email":
        return str(email or address) if (email or address) else None
    return str(address) if address else None


def send_deliveries(ids: list[int]) -> dict[str, int]:
    """RQ job: send each queued delivery once."""
    context = current()
    counts: dict[str, int] = {}
    for delivery_id in ids:
        status = _send_one(context, delivery_id)
        counts[status] = counts.get(status, 0) + 1
    return counts


def _send_one(context: Context, delivery_id: int) -> str:
    # Claim first, in its own transaction: of two workers holding the same id, only the
    # one whose UPDATE matched sends. No row lock is held while the provider answers.
    with context.sessions() as session, session.begin():
        claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(models.Delivery)
            .where(models.Delivery.id == delivery_id, models.Delivery.status == "queued")
            .values(status="sending", updated_at=datetime.now(UTC))
        )
        if claimed.rowcount != 1:
            return "skipped"
        delivery = session.get_one(models.Delivery, delivery_id)
        reporter = (
            session.get(models.Reporter, delivery.reporter_id) if delivery.reporter_id else None
        )
        to = _recipient(context, reporter, delivery.channel) if reporter else None
        body = context.crypto.open(delivery.body) if delivery.sealed else delivery.body
        outgoing = None
        if to is not None:
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
    if outgoing is None:
        result = SendResult(status="failed", error="no address to reply to")
    else:
        try:
            result = sender_for(context, outgoing.channel).send(outgoing)
        except Exception:
            # Put it back so the retried job sends it; the failure is the job's to report.
            _finish(context, delivery_id, SendResult(status="queued", error="send raised"))
            raise
    _finish(context, delivery_id, result)
    log.info("delivery %s on %s: %s", delivery_id, delivery.channel, result.status)
    return result.status


def _finish(context: Context, delivery_id: int, result: SendResult) -> None:
    with context.sessions() as session, session.begin():
        delivery = session.get_one(models.Delivery, delivery_id)
        delivery.attempts += 1
        delivery.status = result.status
        delivery.provider = result.provider or delivery.provider
        delivery.provider_id = result.provider_id or delivery.provider_id
        delivery.error = result.error
        delivery.updated_at = datetime.now(UTC)
