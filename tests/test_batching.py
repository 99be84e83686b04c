"""The gateway gathers complaints into store jobs: a moment while the workers keep up,
longer (or until a batch is full) while they are behind, when jobs wait anyway and a
job of many complaints costs the workers far less per complaint than many jobs of one.
Their claims are gathered too, into one round trip at a time."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from rq import Queue
from rq.serializers import JSONSerializer

from gateway.embedded import EmbeddedRedis
from gateway.intake import _Batcher, _Claims


@pytest.fixture
def queue(redis_url: str) -> Iterator[Queue]:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(
        f"batching-{secrets.token_hex(4)}", connection=connection, serializer=JSONSerializer
    )
    yield queue
    queue.empty()
    connection.delete(*connection.keys(f"test-batching:{queue.name}:*") or ["-"])
    connection.close()


def sizes(queue: Queue) -> list[int]:
    return [len(job.args[0]) for job in queue.jobs]


async def test_batches_grow_while_the_workers_are_behind_and_shrink_once_they_catch_up(
    queue: Queue,
) -> None:
    batcher = _Batcher(queue, linger=0.002, backlog_linger=0.5, backlog_batch=8)
    connection = queue.connection

    async def put(n: int) -> None:
        await batcher.put({"n": n}, (f"test-batching:{queue.name}:{n}", "queued:x"))

    # Nobody is working the queue: the first jobs go out one complaint each, and once two
    # wait the gateway knows the workers are behind.
    for n in range(3):
        await put(n)
        await asyncio.sleep(0.05)
    assert sizes(queue) == [1, 1, 1]
    assert batcher.backlogged

    # Twelve at once while behind: a job of eight as soon as eight are in, the other four
    # after the longer wait; every complaint acknowledged only once its job is in Redis.
    await asyncio.gather(*(put(n) for n in range(3, 15)))
    assert sizes(queue) == [1, 1, 1, 8, 4]
    assert [job.args[0][0]["n"] for job in queue.jobs[3:]] == [3, 11]
    claims = [connection.get(f"test-batching:{queue.name}:{n}") for n in range(15)]
    assert claims == [b"queued:x"] * 15

    # The workers catch up (the queue empties): after one more job, a moment again.
    queue.empty()
    await put(15)
    assert not batcher.backlogged
    loop = asyncio.get_running_loop()
    started = loop.time()
    await put(16)
    assert loop.time() - started < 0.4  # not the 0.5 s wait of a backlog
    assert sizes(queue) == [1, 1]


async def test_while_behind_a_batch_takes_what_is_on_its_way_and_goes_when_none_is(
    queue: Queue,
) -> None:
    # A long linger and a long gap: only complaints arriving can send these batches.
    batcher = _Batcher(queue, backlog_linger=30, backlog_batch=100, backlog_gap=30, backlog_least=8)

    async def put(n: int) -> None:
        """As the gateway does: counted as on its way while its claim is taken."""
        with batcher.coming() as arrived:
            await asyncio.sleep(0)
            await batcher.put({"n": n}, (f"test-batching:{queue.name}:{n}", "queued:x"), arrived)

    for n in range(2):  # nobody works the queue: behind once two jobs wait
        await put(n)
    assert batcher.backlogged

    # Forty at once, as a sender with forty connections: one job of forty, once the last
    # of them is in, not the whole linger later.
    await asyncio.wait_for(asyncio.gather(*(put(n) for n in range(2, 42))), timeout=10)
    assert sizes(queue) == [1, 1, 40]

    # Too few to be worth a job of their own: they wait for more, and go with them.
    few = [asyncio.create_task(put(n)) for n in range(42, 47)]
    await asyncio.sleep(0.3)
    assert not any(task.done() for task in few)
    assert sizes(queue) == [1, 1, 40]
    await asyncio.wait_for(asyncio.gather(*few, *(put(n) for n in range(47, 57))), timeout=10)
    assert sizes(queue) == [1, 1, 40, 15]
    assert [job.args[0][0]["n"] for job in queue.jobs[2:]] == [2, 42]


async def test_while_behind_a_batch_does_not_wait_long_for_one_still_on_its_way(
    queue: Queue,
) -> None:
    batcher = _Batcher(
        queue, backlog_linger=30, backlog_batch=100, backlog_gap=0.02, backlog_least=8
    )

    async def put(n: int) -> None:
        with batcher.coming() as arrived:
            await batcher.put({"n": n}, (f"test-batching:{queue.name}:{n}", "queued:x"), arrived)

    for n in range(2):
        await put(n)
    assert batcher.backlogged
    with batcher.coming():  # a complaint whose claim never comes back
        # Nine in, one still on its way: the batch goes once none came for the gap.
        await asyncio.wait_for(asyncio.gather(*(put(n) for n in range(2, 11))), timeout=10)
    assert sizes(queue) == [1, 1, 9]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own: it is paused, and its command counts are read."""
    server = EmbeddedRedis(tmp_path, fsync="no").start()
    yield server
    server.stop()


def evals(connection: redis.Redis) -> int:
    stats = connection.info("commandstats").get("cmdstat_eval")
    return int(stats["calls"]) if stats else 0


async def test_claims_asked_while_one_round_trip_is_out_go_together_when_it_is_back(
    own_redis: EmbeddedRedis,
) -> None:
    connection = redis.Redis.from_url(own_redis.url)
    claims = _Claims(aioredis.Redis.from_url(own_redis.url))
    try:
        # Redis holds every write for a moment, as a busy one is slow to answer.
        connection.execute_command("CLIENT", "PAUSE", 400, "WRITE")
        first = asyncio.create_task(claims.take("claim:first", "pending:a"))
        await asyncio.sleep(0.05)  # its round trip is out
        later = []
        for n in range(20):  # one request per turn of the loop, as they come in
            later.append(asyncio.create_task(claims.take(f"claim:{n}", "pending:b")))
            await asyncio.sleep(0.005)
        copy = asyncio.create_task(claims.take("claim:first", "pending:c"))  # a retry
        won = await asyncio.wait_for(asyncio.gather(first, *later, copy), timeout=10)
        # The first claim alone, then the twenty-one asked meanwhile in one round trip.
        assert evals(connection) == 2
        assert won == [True] * 21 + [False]
        assert connection.get("claim:first") == b"pending:a"
        # Once nothing is out, a claim goes at once, on its own.
        assert await asyncio.wait_for(claims.take("claim:alone", "pending:d"), timeout=5)
        assert evals(connection) == 3
    finally:
        await claims.redis.aclose()
        connection.close()
