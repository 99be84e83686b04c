"""Two workers storing overlapping batches at the same moment make one case per message.

A job retried while its first run is still going, or a complaint spooled and queued
twice, puts the same messages in two batches. The store's unique idempotency key
decides: the batch that loses the race is stored again with each complaint in a
savepoint of its own, and answers for the other's messages with the other's tickets.
On PostgreSQL the two transactions truly overlap; on SQLite writers take turns.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from config.data import load_taxonomy
from config.settings import load_settings
from normalizer import Rules
from tests.conftest import settings_env
from tests.fakes.stack import sms_complaint
from workers import models
from workers.context import Context
from workers.db import upgrade
from workers.store import Outcome, store


def test_overlapping_batches_stored_at_once_make_one_case_per_message(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    settings = load_settings(settings_env(tmp_path, redis_url, database_url))
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    contexts = [Context(settings, redis_url), Context(settings, redis_url)]
    upgrade(contexts[0].engine)
    complaints = [sms_complaint(rules, f"Lampu jalan mati di gang {i}") for i in range(90)]
    batches = [complaints[:60], complaints[30:]]  # 30 messages in both
    start = threading.Barrier(2)
    results: list[list[Outcome] | BaseException] = [[], []]

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = store(contexts[index], batches[index])
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        first, second = results
        assert isinstance(first, list) and isinstance(second, list), results
        tickets: dict[str, set[str | None]] = {}
        for outcome in [*first, *second]:
            tickets.setdefault(outcome.key, set()).add(outcome.ticket)
        # Every message has one ticket, whichever batch answered for it.
        assert len(tickets) == 90
        assert all(len(found) == 1 and None not in found for found in tickets.values())
        keys = [c.idempotency_key for c in complaints]
        with contexts[0].sessions() as session:
            messages = session.scalar(
                select(func.count(models.Message.id)).where(
                    models.Message.idempotency_key.in_(keys)
                )
            )
            cases = session.scalar(
                select(func.count(func.distinct(models.Message.case_id))).where(
                    models.Message.idempotency_key.in_(keys)
                )
            )
            receipts = session.scalar(
                select(func.count(models.Delivery.id)).where(
                    models.Delivery.dedupe_key.in_([f"{k}:received" for k in keys])
                )
            )
        assert (messages, cases, receipts) == (90, 90, 90)
        # The 30 shared messages: one batch made them, the other found them.
        made = [o.key for o in [*first, *second] if o.outcome == "new"]
        assert sorted(made) == sorted(keys)
    finally:
        for context in contexts:
            context.engine.dispose()
