"""The receipts job: providers' status callbacks onto the deliveries they are about.

Providers report out of order and more than once, so a delivery's status only moves
forward (sent → delivered → read; failed and undelivered end it). A receipt may also
arrive before the reply job has recorded the provider's id; it is tried again shortly.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Retry
from sqlalchemy import select

from workers import models
from workers.context import Context, current

log = logging.getLogger("aduan.receipts")

# (provider, provider's status) → the delivery's status.
DELIVERY_STATUS: dict[tuple[str, str], str] = {
    ("twilio", "accepted"): "sent",
    ("twilio", "scheduled"): "sent",
    ("twilio", "queued"): "sent",
    ("twilio", "sending"): "sent",
    ("twilio", "sent"): "sent",
    ("twilio", "delivered"): "delivered",
    ("twilio", "partially_delivered"): "delivered",
    ("twilio", "read"): "read",
    ("twilio", "undelivered"): "undelivered",
    ("twilio", "failed"): "failed",
    ("twilio", "canceled"): "failed",
    ("meta", "sent"): "sent",
    ("meta", "delivered"): "delivered",
    ("meta", "read"): "read",
    ("meta", "played"): "read",
    ("meta", "failed"): "failed",
}
# How far along each status is; a receipt never moves a delivery back.
PROGRESS: dict[str, int] = {
    "queued": 0,
    "sending": 0,
    "outbox": 0,
    "sent": 1,
    "delivered": 2,
    "undelivered": 2,
    "failed": 2,
    "read": 3,
}
UNMATCHED_ATTEMPTS = 4
UNMATCHED_DELAY = timedelta(seconds=5)


def apply_receipts(receipts: list[dict[str, Any]], attempt: int = 1) -> dict[str, int]:
    """RQ job: apply a batch of receipts (`channels.sms.Receipt.to_dict()`)."""
    context = current()
    counts = {"updated": 0, "unchanged": 0, "unknown_status": 0, "unmatched": 0}
    unmatched: list[dict[str, Any]] = []
    with context.sessions() as session, session.begin():
        for receipt in receipts:
            status = DELIVERY_STATUS.get((receipt["provider"], receipt["status"]))
            if status is None:
                counts["unknown_status"] += 1
                continue
            delivery = session.scalar(
                select(models.Delivery).where(
                    models.Delivery.provider == receipt["provider"],
                    models.Delivery.provider_id == receipt["provider_id"],
                )
            )
            if delivery is None:
                unmatched.append(receipt)
                continue
            if PROGRESS.get(status, 0) <= PROGRESS.get(delivery.status, 0):
                counts["unchanged"] += 1
                continue
            delivery.status = status
            if receipt.get("error") and status in ("failed", "undelivered"):
                delivery.error = str(receipt["error"])[:500]
            delivery.updated_at = datetime.now(UTC)
            counts["updated"] += 1
    counts["unmatched"] = len(unmatched)
    if unmatched:
        _later(context, unmatched, attempt)
    return counts


def _later(context: Context, unmatched: list[dict[str, Any]], attempt: int) -> None:
    if attempt >= UNMATCHED_ATTEMPTS:
        # Not one of ours (a message sent from the Twilio console, say), or long gone.
        log.info("%d receipt(s) match no delivery; dropped", len(unmatched))
        return
    context.queue.enqueue_in(
        UNMATCHED_DELAY * attempt,
        apply_receipts,
        unmatched,
        attempt + 1,
        retry=Retry(max=3, interval=[5, 30, 120]),
    )
