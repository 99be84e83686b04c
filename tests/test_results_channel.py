"""A batch's store results reach the gateways as one message, and stay readable by key."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.settings import load_settings
from tests.conftest import settings_env
from workers.context import RESULTS_CHANNEL, Context, result_key, results_of
from workers.store import RESULT_TTL_SECONDS, Outcome, publish


def messages(pubsub: redis.client.PubSub, seconds: float) -> list[bytes]:
    """What came on the channel within `seconds` (not subscription confirmations)."""
    found = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            found.append(message["data"])
    return found


@pytest.fixture
def context(tmp_path: Path, redis_url: str) -> Iterator[Context]:
    database_url = f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    yield Context(load_settings(settings_env(tmp_path, redis_url, database_url)), redis_url)


def test_a_batch_of_results_is_one_message_and_each_result_is_kept_by_key(
    context: Context,
) -> None:
    outcomes = [
        Outcome(f"key-{secrets.token_hex(4)}", "BGR-2026-000101-5", "received", "new", 1),
        Outcome(f"key-{secrets.token_hex(4)}", None, None, "not_found", None),
        Outcome(
            f"key-{secrets.token_hex(4)}", "BGR-2026-R12345-6", "received", "new", 2, "ABCD-EFGH"
        ),
    ]
    connection: redis.Redis = context.redis
    keys = {o.key for o in outcomes}
    pubsub = connection.pubsub()
    pubsub.subscribe(RESULTS_CHANNEL)
    try:
        messages(pubsub, 0.1)  # subscribed
        publish(context, outcomes)
        # Other stores on this Redis server may publish too: channels are not per database.
        ours = [
            results
            for results in map(results_of, messages(pubsub, 1))
            if any(r.get("key") in keys for r in results)
        ]
    finally:
        pubsub.close()
    assert ours == [[o.public() for o in outcomes]]  # one message, with the whole batch
    for outcome in outcomes:
        key = result_key(outcome.key)
        assert json.loads(connection.get(key) or b"null") == outcome.public()
        assert 0 < connection.ttl(key) <= RESULT_TTL_SECONDS
        connection.delete(key)


def test_a_result_published_alone_by_an_older_worker_is_still_read() -> None:
    result = {"key": "k", "ticket": "BGR-2026-000101-5", "status": "received", "outcome": "new"}
    assert results_of(json.dumps(result).encode()) == [result]
    with pytest.raises(ValueError):
        results_of(b'["not a result"]')
