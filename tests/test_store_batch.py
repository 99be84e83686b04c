"""A batch is stored in one transaction and its rows flushed together: what a reporter
and an operator see must be as if each message had been stored on its own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from channels.base import InboundMessage, Location
from config.data import load_taxonomy
from config.settings import load_settings
from normalizer import Complaint, Rules, normalize
from tests.conftest import settings_env
from tests.fakes.stack import phone_number, sms_complaint
from tests.helpers import incident_links
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


def test_a_batch_numbers_its_cases_in_order_and_every_row_carries_the_number(
    context: Context,
) -> None:
    """New cases are numbered as the batch commits (the counter is held for the commit
    only). Until then a case has a stand-in: whatever the batch wrote with it — the reply,
    the email subject, a title taken from the ticket, an incident link's note, the answer
    to a copy of the same message — must carry the real number once stored."""
    rules = Rules(taxonomy=load_taxonomy(context.settings.topics_file))
    name = "".join(secrets.choice("bcdgjklmnprst") + secrets.choice("aiou") for _ in range(4))
    street = f"Jl. {name.capitalize()}"
    flood = sms_complaint(
        rules,
        f"Banjir setinggi lutut di {street}, got meluap",
        location=Location(lat=-6.59, lon=106.78),
    )
    same_flood = sms_complaint(
        rules, f"Tolong, {street} banjir, got mampet", location=Location(lat=-6.5901, lon=106.7801)
    )
    mail = normalize(
        InboundMessage(
            channel="email",
            provider="smtp",
            provider_message_id=f"<{secrets.token_hex(8)}@warga.example>",
            sender=f"warga{secrets.token_hex(3)}@example.com",
            subject="",
            text="Lampu jalan mati di gang Mawar sejak kemarin malam",
        ),
        rules,
    )
    resident = phone_number()

    def form(text: str) -> Complaint:
        """The web form: each submission is told whole, so the same one again is a repeat."""
        message = InboundMessage(
            channel="web",
            provider="web",
            provider_message_id=secrets.token_hex(16),
            sender=resident,
            text=text,
        )
        return normalize(message, rules)

    batch = [
        flood,
        mail,
        same_flood,
        flood,  # the provider's retry, in the same batch
        form("Sampah menumpuk di TPS Jl. Merdeka, bau busuk"),
        form("Sampah menumpuk di TPS Jl. Merdeka, bau busuk sekali"),
    ]
    outcomes = store(context, batch)
    assert [o.outcome for o in outcomes] == ["new", "new", "new", "duplicate", "new", "repeat"]
    numbers = [number(o.ticket) for o in outcomes]
    assert numbers[1:3] == [numbers[0] + 1, numbers[0] + 2]
    assert numbers[3] == numbers[0] and numbers[4] == numbers[5] == numbers[0] + 3

    with context.sessions() as session:
        cases = {c.id: c for c in session.scalars(select(models.Case))}
        deliveries = session.scalars(select(models.Delivery)).all()
        notes = session.scalars(
            select(models.AuditEvent).where(
                models.AuditEvent.action == "incident_link",
                models.AuditEvent.case_id.in_([o.case_id for o in outcomes]),
            )
        ).all()
        written = [
            *(f"{c.ticket} {c.title}" for c in cases.values()),
            *(f"{d.subject} {d.body}" for d in deliveries),
            *(str(a.detail) for a in notes),
        ]
        assert not [text for text in written if "~ticket" in text]
        for outcome in outcomes:
            assert outcome.case_id is not None
            assert cases[outcome.case_id].ticket == outcome.ticket
        (link,) = notes
        assert link.detail["ticket"] == outcomes[2].ticket
        replies = {(d.case_id, d.kind): d for d in deliveries}
        for outcome in outcomes[:3] + outcomes[4:5]:
            assert outcome.ticket in replies[outcome.case_id, "received"].body
        assert outcomes[1].ticket in (replies[outcomes[1].case_id, "received"].subject or "")
        repeat = replies[outcomes[5].case_id, "received_followup"]
        assert outcomes[5].ticket in repeat.body


def test_a_topic_changed_mid_batch_reads_incidents_again_and_links_keep_their_numbers(
    context: Context,
) -> None:
    """A burst's second piece can name the problem its first only hinted at: the case
    changes topic, and the batch reads that topic's incidents again, from the database.
    The links made so far in the batch are in what it reads (the next report joins the
    incident, not a case that is itself linked), and every link's note still carries the
    real ticket, not the stand-in the case had when the batch read again."""
    name = "".join(secrets.choice("bcdgjklmnprst") + secrets.choice("aiou") for _ in range(4))
    street = f"Jl. {name.capitalize()}"
    place = {"lat": -6.5901, "lon": 106.7801}
    resident = phone_number()

    def flood(text: str, sender: str | None = None, located: bool = True) -> Complaint:
        rules = Rules(taxonomy=load_taxonomy(context.settings.topics_file))
        message = InboundMessage(
            channel="sms",
            provider="twilio",
            provider_message_id="SM" + secrets.token_hex(16),
            sender=sender or phone_number(),
            text=text,
            location=Location(**place) if located else None,
        )
        return normalize(message, rules)

    batch = [
        flood(f"Banjir setinggi lutut di {street}, got meluap"),
        flood(f"Tolong, {street} banjir, got mampet dan meluap"),
        flood("Selamat pagi admin, mau lapor", resident, located=False),
        flood(f"banjir di {street}, got meluap", resident),  # the burst names the problem
        flood(f"Tolong, {street} banjir, got mampet dan meluap lagi"),  # as the second
    ]
    assert batch[2].topic != batch[0].topic == batch[3].topic == batch[4].topic
    outcomes = store(context, batch)
    assert [o.outcome for o in outcomes] == ["new", "new", "new", "burst", "new"]
    first, second, _, _, last = outcomes
    with context.sessions() as session:
        links = incident_links(session, (o.case_id for o in outcomes))
        notes = session.scalars(
            select(models.AuditEvent.detail).where(
                models.AuditEvent.action == "incident_link",
                models.AuditEvent.case_id == first.case_id,
            )
        ).all()
        events = session.scalars(
            select(models.StatusEvent.case_id).where(
                models.StatusEvent.case_id.in_([o.case_id for o in outcomes])
            )
        ).all()
    assert links[second.case_id] == first.case_id
    assert links[last.case_id] == first.case_id
    assert sorted(str(note["ticket"]) for note in notes if note) == sorted(
        [str(second.ticket), str(last.ticket)]
    )
    assert sorted(events) == sorted({o.case_id for o in outcomes if o.outcome == "new"})
