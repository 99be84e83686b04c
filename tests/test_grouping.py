"""One problem stays one thing: bursts, repeats, incidents, and exactly-once under load."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from channels.base import Location
from config.data import load_replies, load_taxonomy
from config.settings import load_settings
from gateway.app import create_app
from normalizer import Complaint, Rules
from normalizer.similarity import IncidentCandidate, incident_verdicts
from tests.conftest import (
    ROOT,
    Stack,
    eventually,
    free_port,
    settings_env,
    start_worker,
    stop_process,
)
from tests.fakes.stack import phone_number, provider_stack, sms_complaint
from tests.fakes.twilio_api import FakeTwilio
from tests.helpers import incident_links, messages_stored, png_bytes
from tests.test_twilio_e2e import SMS_FROM, post, recorded
from workers import models
from workers.cases import Actor, change_status
from workers.context import Context
from workers.db import make_engine, session_factory, upgrade
from workers.grouping import CANDIDATE_LIMIT, _members, _window_start, read_pools_ahead
from workers.store import _grouping_rules, _read_pools_ahead, _store_batch, store

Client = TestClient[Any, Any]


@pytest.fixture(scope="module")
def two_workers(
    redis_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    twilio_api: FakeTwilio,
) -> Iterator[Stack]:
    """A stack whose queue is served by two worker processes at once."""
    tmp = tmp_path_factory.mktemp("grouping")
    with provider_stack(
        redis_url,
        database_url,
        tmp,
        **twilio_api.settings(SMS_FROM),
    ) as stack:
        second = start_worker(stack.env, tmp / "worker2.log")
        try:
            yield stack
        finally:
            stop_process(second)


@pytest.fixture
async def gateway(two_workers: Stack) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(two_workers.services()), host="127.0.0.1")) as c:
        yield c


@pytest.fixture(scope="module")
def store_engine(two_workers: Stack) -> Iterator[Any]:
    engine = make_engine(two_workers.settings.effective_database_url)
    yield engine
    engine.dispose()


async def test_a_burst_of_three_messages_is_one_case_with_one_reply(
    gateway: Client, two_workers: Stack, twilio_api: FakeTwilio, store_engine: Any
) -> None:
    sender = phone_number()
    sids = []
    bodies = ["jalan berlubang", "di Jl. Pajajaran depan Tugu Kujang", ""]
    for body in bodies:
        fields = recorded("sms_text.form", From=sender, Body=body)
        if not body:
            media_sid = "ME" + secrets.token_hex(16)
            twilio_api.media[media_sid] = (png_bytes(), "image/png")
            fields.update(
                NumMedia="1",
                MediaContentType0="image/png",
                MediaUrl0=twilio_api.media_url(fields["MessageSid"], media_sid),
            )
        response = await post(gateway, two_workers, "/webhooks/twilio", fields)
        assert response.status == 200
        sids.append(fields["MessageSid"])
        await asyncio.sleep(0.2)  # messages 200 ms apart, handled by two workers

    factory = session_factory(store_engine)

    def stored() -> list[models.Message]:
        with factory() as session:
            found = session.scalars(
                select(models.Message).where(models.Message.provider_message_id.in_(sids))
            ).all()
            return list(found) if len(found) == 3 else []

    messages = await eventually(stored, within=20)
    assert len({m.case_id for m in messages}) == 1
    with factory() as session:
        case = session.get_one(models.Case, messages[0].case_id)
        assert case.topic == "infrastruktur"
        inbound = [m.text for m in sorted(case.messages, key=lambda m: m.received_at)]
        assert inbound[:2] == bodies[:2]
    await eventually(lambda: [s for s in twilio_api.sent() if s.get("To") == sender], within=20)
    await asyncio.sleep(1.0)  # a second reply, if there were one, would have arrived by now
    replies = [s for s in twilio_api.sent() if s.get("To") == sender]
    assert len(replies) == 1 and case.ticket in replies[0]["Body"]


async def test_the_same_complaint_again_gets_the_existing_ticket(gateway: Client) -> None:
    phone = phone_number()
    text = "Sampah menumpuk di TPS Jl. Merdeka dekat Masjid Agung, sudah seminggu tidak diangkut"
    first = await gateway.post("/api/v1/complaints", json={"text": text, "phone": phone})
    again = await gateway.post(
        "/api/v1/complaints", json={"text": text + ". Mohon segera!", "phone": phone}
    )
    assert first.status == again.status == 201
    assert (await first.json())["ticket"] == (await again.json())["ticket"]
    other = await gateway.post(
        "/api/v1/complaints",
        json={"text": "Lampu PJU mati di Jl. Pandu Raya depan Indomaret", "phone": phone},
    )
    assert (await other.json())["ticket"] != (await first.json())["ticket"]


async def test_one_flood_reported_by_three_people_is_one_incident(
    gateway: Client, store_engine: Any
) -> None:
    # A street of its own: the case store is shared with other tests' floods.
    name = "".join(secrets.choice("bcdgjklmnprst") + secrets.choice("aiou") for _ in range(4))
    name = name.capitalize()
    street = f"Jl. {name}"
    reports = [
        (f"Banjir setinggi lutut di {street} depan SDN {name}, got meluap", -6.5901, 106.7801),
        (f"Jalan {name} kebanjiran lagi, air dari selokan meluap", -6.5903, 106.7803),
        (f"Tolong pak, {street} banjir, got mampet", -6.5900, 106.7799),
        ("Banjir di Jl. Pajajaran depan Tugu Kujang, air meluap dari drainase", -6.6005, 106.8052),
    ]
    tickets = []
    for text, lat, lon in reports:
        response = await gateway.post(
            "/api/v1/complaints",
            json={"text": text, "phone": phone_number(), "location": {"lat": lat, "lon": lon}},
        )
        assert response.status == 201, await response.text()
        tickets.append((await response.json())["ticket"])
    assert len(set(tickets)) == 4  # each reporter keeps a ticket of their own

    factory = session_factory(store_engine)
    with factory() as session:
        cases = {
            c.ticket: c
            for c in session.scalars(select(models.Case).where(models.Case.ticket.in_(tickets)))
        }
        links = dict(
            session.execute(select(models.CaseLink.case_id, models.CaseLink.into_case_id)).all()
        )
        root = cases[tickets[0]]
        assert links.get(cases[tickets[1]].id) == root.id
        assert links.get(cases[tickets[2]].id) == root.id
        assert cases[tickets[3]].id not in links  # another street, 2 km away

    # A status change on the incident reaches every linked reporter.
    with factory() as session, session.begin():
        _, ids = change_status(
            session, load_replies(), root.id, Actor("siti", "operator"), "dispatched", "ke DPUPR"
        )
        told = session.scalars(
            select(models.Delivery.case_id).where(models.Delivery.id.in_(ids))
        ).all()
    assert set(told) == {root.id, cases[tickets[1]].id, cases[tickets[2]].id}


async def test_exactly_once_under_concurrent_retries_across_gateways_and_workers(
    redis_url: str, database_url: str, tmp_path: Path
) -> None:
    """1,000 messages, each delivered 10 times at once, to two gateway processes served by
    two workers: 1,000 messages stored, one reply per case."""
    token = secrets.token_hex(16)
    ports = [free_port(), free_port()]
    env = settings_env(
        tmp_path,
        redis_url,
        database_url,
        ADUAN_QUEUE=f"once-{secrets.token_hex(3)}",
        ADUAN_TWILIO_AUTH_TOKEN=token,
        ADUAN_LOG_LEVEL="WARNING",
    )
    engine = make_engine(database_url)
    upgrade(engine)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            gateway_env = {
                **os.environ,
                **env,
                "ADUAN_HTTP_PORT": str(port),
                "ADUAN_SMTP_PORT": str(free_port()),
                "ADUAN_PUBLIC_URL": f"http://127.0.0.1:{port}",
            }
            with (tmp_path / "gateways.log").open("ab") as log:
                processes.append(
                    subprocess.Popen(  # noqa: ASYNC220 - starts a server; does not wait
                        [sys.executable, "-m", "gateway.cli", "serve", "--no-worker"],
                        env=gateway_env,
                        cwd=ROOT,
                        stdout=log,
                        stderr=log,
                    )
                )
        for index in range(2):
            processes.append(start_worker(env, tmp_path / f"worker{index}.log"))

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as client:
            for port in ports:

                async def up(port: int = port) -> bool:
                    try:
                        async with client.get(f"http://127.0.0.1:{port}/healthz") as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                await eventually(up, within=30)

            messages = [
                {
                    "MessageSid": "SM" + secrets.token_hex(16),
                    "From": phone_number(),
                    "To": SMS_FROM,
                    "Body": f"Jalan rusak di gang {i}",
                    "NumMedia": "0",
                    "AccountSid": "AC" + "0" * 32,
                }
                for i in range(1000)
            ]
            statuses: list[int] = []
            semaphore = asyncio.Semaphore(64)

            async def deliver(fields: dict[str, str], copy: int) -> None:
                port = ports[copy % 2]
                url = f"http://127.0.0.1:{port}/webhooks/twilio"
                signature = RequestValidator(token).compute_signature(url, fields)
                async with (
                    semaphore,
                    client.post(
                        url,
                        data=urlencode(fields),
                        headers={
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Twilio-Signature": signature,
                        },
                    ) as response,
                ):
                    statuses.append(response.status)

            await asyncio.gather(*(deliver(m, c) for m in messages for c in range(10)))
        assert statuses.count(200) == 10_000

        sids = [m["MessageSid"] for m in messages]
        factory = session_factory(engine)

        def stored() -> int:
            return messages_stored(engine, sids)

        await eventually(lambda: stored() >= 1000, within=120, interval=0.5)
        await asyncio.sleep(2)  # let any duplicate that might still be in flight land
        assert stored() == 1000
        with factory() as session:
            per_case = session.execute(
                select(models.Delivery.case_id, func.count())
                .join(models.Message, models.Message.case_id == models.Delivery.case_id)
                .where(models.Message.provider_message_id.in_(sids))
                .group_by(models.Delivery.case_id)
            ).all()
        assert len(per_case) == 1000
        assert {count for _, count in per_case} == {1}
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            stop_process(process)
        engine.dispose()


def _street() -> str:
    """A street of a test's own: the case store is shared with other tests' floods."""
    name = "".join(secrets.choice("bcdgjklmnprst") + secrets.choice("aiou") for _ in range(4))
    return f"Jl. {name.capitalize()}"


def _placed(rules: Rules, reports: list[tuple[str, float, float]]) -> list[Complaint]:
    """SMS complaints, each (text, lat, lon) with the location its reporter shared."""
    return [
        sms_complaint(rules, text, location=Location(lat=lat, lon=lon))
        for text, lat, lon in reports
    ]


def test_reports_of_one_incident_in_the_same_store_batch_are_linked(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The store reads a topic's incident candidates once per batch: cases it makes in
    the batch must be candidates for the batch's later complaints all the same."""
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    street, elsewhere = _street(), _street()
    # (text, lat, lon): the first is another flood 2 km away; reading it makes the store
    # read the topic's candidates, before the two reports of this flood have cases.
    reports = [
        (f"Banjir di {elsewhere}, got meluap", -6.6005, 106.8052),
        (f"Banjir setinggi lutut di {street}, got meluap", -6.5901, 106.7801),
        (f"Tolong, {street} banjir, got mampet dan meluap", -6.5902, 106.7802),
    ]
    complaints = _placed(rules, reports)
    try:
        outcomes = store(context, complaints)  # one batch, one transaction
        assert [o.outcome for o in outcomes] == ["new", "new", "new"]
        with context.sessions() as session:
            links = incident_links(session, (o.case_id for o in outcomes))
        _, first_report, second_report = (o.case_id for o in outcomes)
        assert links == {second_report: first_report}
    finally:
        context.engine.dispose()


def test_candidates_read_from_the_store_carry_their_time_in_utc(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """PostgreSQL answers in the session's zone (psycopg gives a `ZoneInfo`, even for
    UTC): a candidate's time is turned to UTC as it is read, so that linking compares it
    with each new complaint's as a number, not as two zoned datetimes."""
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    street = _street()
    first, second = (
        sms_complaint(rules, f"{text} di {street}, got meluap")
        for text in ("Banjir", "Banjir lagi")
    )
    try:
        (stored,) = store(context, [first])
        with context.sessions() as session:
            created = session.scalar(
                select(models.Case.created_at).where(models.Case.id == stored.case_id)
            )
            ahead = read_pools_ahead(session, [second], _grouping_rules(context))
        (candidate,) = [c for c in ahead.pools[second.topic].cases if c.id == stored.case_id]
        moment = candidate.report.received_at
        assert moment is not None and moment.tzinfo is UTC
        assert created is not None
        assert moment == (created if created.tzinfo else created.replace(tzinfo=UTC))
        assert candidate.report._link.stamp is not None
    finally:
        context.engine.dispose()


def _link_of(context: Context, case_id: int | None) -> int | None:
    if case_id is None:
        return None
    with context.sessions() as session:
        return incident_links(session, [case_id]).get(case_id)


def test_a_worker_links_a_report_to_an_incident_another_worker_stored_since_its_last_batch(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A worker keeps the candidates it read between its batches, and reads only the
    cases made since: those another worker stored are among them."""
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    worker, other = Context(settings, redis_url), Context(settings, redis_url)
    upgrade(worker.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    street, elsewhere = _street(), _street()
    unrelated, first, second = _placed(
        rules,
        [
            (f"Banjir di {elsewhere}, got meluap", -6.6005, 106.8052),
            (f"Banjir setinggi lutut di {street}, got meluap", -6.5901, 106.7801),
            (f"Tolong, {street} banjir, got mampet dan meluap", -6.5902, 106.7802),
        ],
    )
    try:
        store(worker, [unrelated])  # the worker reads the topic's candidates and keeps them
        (stored,) = store(other, [first])
        (linked,) = store(worker, [second])
        assert (stored.outcome, linked.outcome) == ("new", "new")
        assert _link_of(worker, linked.case_id) == stored.case_id
    finally:
        worker.engine.dispose()
        other.engine.dispose()


def _resolve(context: Context, case_id: int | None, note: str) -> None:
    """An operator on duty resolves the case."""
    assert case_id is not None
    with context.sessions() as session, session.begin():
        change_status(session, load_replies(), case_id, Actor("siti", "operator"), "resolved", note)


def test_a_report_is_not_linked_into_an_incident_closed_since_the_worker_read_it(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """An incident an operator resolved a moment ago takes no new reports, even while the
    worker still keeps it among the candidates it read: the new report is a case of its
    own, for an operator to see."""
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    street, elsewhere = _street(), _street()
    first, unrelated, second, third = _placed(
        rules,
        [
            (f"Banjir setinggi lutut di {street}, got meluap", -6.5901, 106.7801),
            (f"Banjir di {elsewhere}, got meluap", -6.6005, 106.8052),
            (f"Tolong, {street} banjir, got mampet dan meluap", -6.5902, 106.7802),
            (f"{street} banjir lagi, got meluap sampai rumah", -6.5901, 106.7802),
        ],
    )
    try:
        (incident,) = store(context, [first])
        store(context, [unrelated])  # the incident is now among the worker's candidates
        _resolve(context, incident.case_id, "air sudah surut")
        (alone,) = store(context, [second])
        assert alone.outcome == "new"
        assert _link_of(context, alone.case_id) is None
        # The report that was not linked opens the incident for the next one.
        (linked,) = store(context, [third])
        assert _link_of(context, linked.case_id) == alone.case_id
    finally:
        context.engine.dispose()


def test_an_incident_of_another_topic_closed_since_the_worker_read_it_takes_no_report(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A batch looks up whether the incidents of all its topics are still open with its
    first link: the flood it links first asks about the garbage incident too, which an
    operator resolved a moment ago. The garbage report of the same batch is a case of its
    own, and the flood report is linked."""
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    street, tps, elsewhere = _street(), _street(), _street()
    flood, garbage, unrelated, flood_again, garbage_again = _placed(
        rules,
        [
            (f"Banjir setinggi lutut di {street}, got meluap", -6.5901, 106.7801),
            (f"Sampah menumpuk di TPS {tps}, bau busuk", -6.6101, 106.8101),
            (f"Sampah berserakan di {elsewhere}", -6.6205, 106.8252),
            (f"Tolong, {street} banjir, got mampet dan meluap", -6.5902, 106.7802),
            (f"TPS {tps} penuh, sampah menumpuk dan bau busuk", -6.6102, 106.8102),
        ],
    )
    assert (flood.topic, garbage.topic) == (flood_again.topic, garbage_again.topic)
    assert unrelated.topic == garbage.topic
    assert flood.topic != garbage.topic
    try:
        (incident,) = store(context, [flood])
        (resolved,) = store(context, [garbage])
        store(context, [unrelated])  # both incidents are now among the worker's candidates
        _resolve(context, resolved.case_id, "sampah sudah diangkut")
        linked, alone = store(context, [flood_again, garbage_again])
        assert _link_of(context, linked.case_id) == incident.case_id
        assert alone.outcome == "new"
        assert _link_of(context, alone.case_id) is None
    finally:
        context.engine.dispose()


def test_the_next_batch_judges_against_the_stored_cases_not_the_last_batchs_own(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A worker keeps each topic's candidates as an index between batches; a batch adds
    its new cases to it, as candidates for its later complaints, and the next batch reads
    them back from the store. The index it then judges with gives what judging each
    stored candidate gives, and none of the last batch's own rows is left in it."""
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    streets = [_street() for _ in range(4)]
    floods = [
        sms_complaint(rules, text, location=Location(lat=-6.59 - i / 500, lon=106.78))
        for i, street in enumerate(streets)
        for text in (f"Banjir setinggi lutut di {street}, got meluap", f"{street} banjir lagi")
    ]
    probe = sms_complaint(rules, f"Tolong, {streets[0]} banjir, got mampet dan meluap")
    try:
        store(context, floods[:4])  # the worker reads the topic's candidates and keeps them
        store(context, floods[4:])  # this batch adds its own four cases to them
        with context.sessions() as session:
            link_rules = _grouping_rules(context)
            pool = read_pools_ahead(session, [probe], link_rules).pools[probe.topic]
        assert pool.indexed is not None
        assert sum(pool.indexed.made_by.values()) == 0  # no batch's own row
        assert pool.indexed.held == min(len(pool.cases), CANDIDATE_LIMIT)
        new = IncidentCandidate.from_complaint(probe)
        members = _members(pool.cases, _window_start(probe, link_rules), None, None, None)
        want = incident_verdicts(new, members, link_rules.link)
        assert any(score is not None for score in want.values())  # it links somewhere
        assert list(pool.indexed.index.verdicts(new, link_rules.link).items()) == list(want.items())
    finally:
        context.engine.dispose()


def test_sqlite_a_case_committed_while_a_batch_waited_for_the_write_lock_is_a_candidate(
    redis_url: str, tmp_path: Path
) -> None:
    """On SQLite a batch reads its incident candidates before it takes the write lock,
    while another worker may still be storing. The case that worker commits in between
    is read as the batch takes the lock: the two reports are still one incident."""
    database = f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    settings = load_settings(settings_env(tmp_path, redis_url, database))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    first, second = _placed(
        rules,
        [
            ("Banjir setinggi lutut di Jl. Sempur Kaler, got meluap", -6.5901, 106.7801),
            ("Tolong, Jl. Sempur Kaler banjir, got mampet dan meluap", -6.5902, 106.7802),
        ],
    )
    try:
        waiting = _read_pools_ahead(context, [second])  # before the other batch commits
        assert waiting is not None and not waiting.pools[second.topic].cases
        (stored,) = store(context, [first])  # the other worker's batch
        (linked,) = _store_batch(context, [second], savepoints=False, ahead=waiting)
        assert (stored.outcome, linked.outcome) == ("new", "new")
        with context.sessions() as session:
            into = session.scalar(
                select(models.CaseLink.into_case_id).where(
                    models.CaseLink.case_id == linked.case_id
                )
            )
        assert into == stored.case_id
    finally:
        context.engine.dispose()


def test_sqlite_a_batch_reads_its_candidates_while_another_writer_holds_the_lock(
    redis_url: str, tmp_path: Path
) -> None:
    """Reading ahead takes no write lock: it does not wait for a writer (SQLite's busy
    timeout is 30 s, so a read that took the lock would fail here, not pass)."""
    database = tmp_path / "cases.sqlite3"
    settings = load_settings(settings_env(tmp_path, redis_url, f"sqlite:///{database}"))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another worker storing its batch
        complaint = sms_complaint(rules, "Lampu jalan mati di Jl. Sempur")
        ahead = _read_pools_ahead(context, [complaint])
        assert ahead is not None and list(ahead.pools) == [complaint.topic]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        context.engine.dispose()


def test_sqlite_a_batch_judges_its_incidents_while_another_writer_holds_the_lock(
    redis_url: str, tmp_path: Path
) -> None:
    """On SQLite a batch compares its complaints with their incident candidates before it
    takes the write lock, while another worker stores: under the lock it only looks at
    the cases added since. The verdict made ahead is the one that links."""
    database = tmp_path / "cases.sqlite3"
    settings = load_settings(settings_env(tmp_path, redis_url, f"sqlite:///{database}"))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    first, second = (
        sms_complaint(rules, text, location=Location(lat=-6.5901, lon=106.7801))
        for text in (
            "Banjir setinggi lutut di Jl. Sempur Kaler, got meluap",
            "Tolong, Jl. Sempur Kaler banjir, got mampet dan meluap",
        )
    )
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        (stored,) = store(context, [first])
        writer.execute("BEGIN IMMEDIATE")  # another worker storing its batch
        ahead = _read_pools_ahead(context, [second])
        writer.execute("ROLLBACK")
        assert ahead is not None
        judged = ahead.judged[second.idempotency_key].verdicts
        assert list(judged) == [stored.case_id] and (judged[stored.case_id] or 0) > 0
        (linked,) = _store_batch(context, [second], savepoints=False, ahead=ahead)
        assert _link_of(context, linked.case_id) == stored.case_id
    finally:
        writer.close()
        context.engine.dispose()


def test_sqlite_a_report_judged_before_the_lock_is_refused_by_a_case_added_since(
    redis_url: str, tmp_path: Path
) -> None:
    """An incident is refused when any of its reports contradicts the new one. A report
    added to it between the read ahead and the lock counts as much as those read ahead:
    here it is 1 km from the new report, which must then not join that incident."""
    database = f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    settings = load_settings(settings_env(tmp_path, redis_url, database))
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    unplaced = sms_complaint(rules, "Banjir setinggi lutut di Jl. Sempur Kaler, got meluap")
    near, far = (
        sms_complaint(rules, text, location=Location(lat=lat, lon=106.7801))
        for text, lat in (
            ("Tolong, Jl. Sempur Kaler banjir, got mampet dan meluap", -6.5901),
            ("Jl. Sempur Kaler banjir lagi, got meluap", -6.5990),
        )
    )
    try:
        (incident,) = store(context, [unplaced])
        ahead = _read_pools_ahead(context, [far])  # the incident has one report: it fits
        assert ahead is not None
        judged = ahead.judged[far.idempotency_key].verdicts
        assert list(judged) == [incident.case_id] and judged[incident.case_id] is not None
        (joined,) = store(context, [near])  # another worker's batch, meanwhile
        assert _link_of(context, joined.case_id) == incident.case_id
        (alone,) = _store_batch(context, [far], savepoints=False, ahead=ahead)
        assert alone.outcome == "new"
        assert _link_of(context, alone.case_id) is None
    finally:
        context.engine.dispose()
