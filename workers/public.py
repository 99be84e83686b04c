"""What anyone holding a ticket number may see: status and dates, never the reporter."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers import models
from workers.crypto import Crypto


def public_status(
    session: Session, ticket: str, crypto: Crypto, receipt: str | None = None
) -> dict[str, Any] | None:
    """None when not found, or confidential and the receipt code is missing or wrong."""
    case = session.scalar(select(models.Case).where(models.Case.ticket == ticket))
    if case is None:
        return None
    if case.confidential and not (
        receipt and case.receipt_hash and crypto.check_receipt(receipt, case.receipt_hash)
    ):
        return None
    return {
        "ticket": case.ticket,
        "status": case.status,
        "topic": case.topic,
        "confidential": case.confidential,
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "history": [
            {"status": event.to_status, "at": event.created_at.isoformat()} for event in case.events
        ],
    }
