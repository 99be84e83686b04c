"""A worker that dies right after taking a job from the queue loses nothing.

Workers serve two queues, replies first (workers.context.reply_queue_name). RQ takes a
job from one queue by moving it to an "intermediate" list, where it is found again if
the worker dies before registering the job as started; from several queues RQ pops it
(BLPOP), and the job then lives only in the worker's memory. The fault-injection suite
lost an acknowledged complaint that way: a worker or Redis killed between pop and
registration. workers.worker.AduanQueue takes from several queues by moving too.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.serializers import JSONSerializer
from sqlalchemy import select

from config.data import load_taxonomy
from config.settings import load_settings
from gateway.intake import _Batcher
from normalizer import Rules
from tests.conftest import eventually, settings_env, start_worker, stop_process
from tests.fakes.stack import sms_complaint
from workers import models
from workers.context import reply_queue_name
from workers.db import make_engine, session_factory, upgrade
from workers.worker import AduanWorker


async def test_a_job_taken_by_a_worker_that_died_before_starting_it_is_still_stored(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    env = settings_env(
        tmp_path, redis_url, database_url, ADUAN_QUEUE=f"dequeue-{secrets.token_hex(3)}"
    )
    settings = load_settings(env)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    complaint = sms_complaint(rules, "Lampu jalan mati di Jl. Pajajaran")
    connection = redis.Redis.from_url(redis_url)
    store_queue = Queue(settings.queue_name, connection=connection, serializer=JSONSerializer)
    replies = Queue(
        reply_queue_name(settings.queue_name), connection=connection, serializer=JSONSerializer
    )
    worker = None
    try:
        # The gateway's own enqueue: one store job, with its retries.
        _Batcher(store_queue).enqueue_sync([complaint.to_dict()])
        [job_id] = store_queue.job_ids

        # A worker takes it the way every aduan worker does, from both queues...
        taken = AduanWorker.queue_class.dequeue_any(
            [replies, store_queue], 1, connection=connection, serializer=JSONSerializer
        )
        assert taken is not None and taken[0].id == job_id
        # ...and dies before it could register the job as started. Redis still knows
        # where the job is; with RQ's BLPOP it would be in no list and no registry.
        assert store_queue.count == 0
        assert job_id in store_queue.intermediate_queue.get_job_ids()
        assert job_id not in store_queue.started_job_registry

        # It has been stuck that way for two minutes when the next worker comes along.
        intermediate = store_queue.intermediate_queue
        connection.set(intermediate.get_first_seen_key(job_id), time.time() - 120)
        worker = start_worker(env, tmp_path / "worker.log")

        def stored() -> bool:
            with session_factory(engine)() as session:
                found = session.scalar(
                    select(models.Message.id).where(
                        models.Message.idempotency_key == complaint.idempotency_key
                    )
                )
            return found is not None

        await eventually(lambda: asyncio.to_thread(stored), within=30, interval=0.2)
        assert job_id not in intermediate.get_job_ids()
    finally:
        if worker is not None:
            stop_process(worker)
        connection.close()
        engine.dispose()


def test_a_worker_takes_a_reply_before_a_store_job_and_can_lose_neither(
    tmp_path: Path, redis_url: str
) -> None:
    connection = redis.Redis.from_url(redis_url)
    name = f"order-{secrets.token_hex(3)}"
    store_queue = Queue(name, connection=connection, serializer=JSONSerializer)
    replies = Queue(reply_queue_name(name), connection=connection, serializer=JSONSerializer)
    try:
        store_job = store_queue.enqueue_call("workers.store.store_complaints", args=([],))
        reply_job = replies.enqueue_call("workers.replies.send_deliveries", args=([],))
        dequeue = AduanWorker.queue_class.dequeue_any
        first = dequeue([replies, store_queue], 1, connection=connection, serializer=JSONSerializer)
        second = dequeue(
            [replies, store_queue], 1, connection=connection, serializer=JSONSerializer
        )
        assert first is not None and second is not None
        assert [first[0].id, second[0].id] == [reply_job.id, store_job.id]
        assert replies.intermediate_queue.get_job_ids() == [reply_job.id]
        assert store_queue.intermediate_queue.get_job_ids() == [store_job.id]
        # Nothing left: an idle worker's wait ends when its timeout does.
        started = time.monotonic()
        assert dequeue([replies, store_queue], None, connection=connection) is None
        with pytest.raises(DequeueTimeout):  # what the worker loop expects
            dequeue([replies, store_queue], 1, connection=connection)
        assert 0.9 < time.monotonic() - started < 3
    finally:
        for queue in (store_queue, replies):
            queue.delete(delete_jobs=True)
            connection.delete(queue.intermediate_queue_key)
        connection.close()
