"""A batch is stored in one transaction and its rows flushed together: what a reporter
and an operator see must be as if each message had been stored on its own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.base import InboundMessage
from config.data import load_taxonomy
from config.settings import load_settings
from normalizer import Complaint, Rules, normalize
from tests.conftest import settings_env
from tests.fakes.stack import phone_number
from workers import models
from workers.context import Context
from workers.db import upgrade
from workers.store import store


@pytest.fixture
def context(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Context]:
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    yield context
    context.engine.dispose()


def sms(context: Context, sender: str, text: str) -> Complaint:
    rules = Rules(taxonomy=load_taxonomy(context.settings.topics_file))
    message = InboundMessage(
        channel="sms",
        provider="twilio",
        provider_message_id="SM" + secrets.token_hex(16),
        sender=sender,
        text=text,
    )
    return normalize(message, rules)


def number(ticket: str | None) -> int:
    assert ticket is not None
    return int(ticket.split("-")[2])


def test_tickets_have_no_gap_when_a_batch_holds_a_burst(context: Context) -> None:
    """A batch takes its tickets from the counter at once, one per message that might
    open a case; the second piece of a burst opens none, and its number is given back."""
    first, other = phone_number(), phone_number()
    batch = [
        sms(context, first, "Jalan berlubang besar di gang Kenari"),
        sms(context, first, "dekat masjid, sudah dua minggu"),
        sms(context, other, "Sampah menumpuk di TPS Jl. Merdeka, bau busuk"),
    ]
    outcomes = store(context, batch)
    assert [o.outcome for o in outcomes] == ["new", "burst", "new"]
    assert outcomes[0].ticket == outcomes[1].ticket
    assert number(outcomes[2].ticket) == number(outcomes[0].ticket) + 1
    # One reply for the burst, on its first piece, and its id is known to the reply job.
    assert len(outcomes[0].deliveries) == 1 and outcomes[1].deliveries == ()
    assert outcomes[0].case_id is not None and outcomes[0].case_id == outcomes[1].case_id

    (later,) = store(context, [sms(context, phone_number(), "Lampu PJU mati di gang Mawar")])
    assert number(later.ticket) == number(outcomes[2].ticket) + 1

    with context.sessions() as session:
        case = session.get(models.Case, outcomes[0].case_id)
        assert case is not None
        assert [m.text for m in case.messages] == [c.text for c in batch[:2]]
        assert [(e.from_status, e.to_status) for e in case.events] == [(None, "received")]
        replies = session.scalar(
            select(func.count(models.Delivery.id)).where(models.Delivery.case_id == case.id)
        )
        assert replies == 1
