"""SIGTERM to a worker in the middle of a job: it finishes the job, then exits cleanly.

A deployment restarting workers (a new release, a scaled-down pod) sends SIGTERM; RQ's
warm shutdown lets the current job end. The job here is a real store batch of 300
complaints, long enough for the signal to land while it runs.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import secrets
import signal
import time
from pathlib import Path

import redis
from rq import Queue
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from config.data import load_taxonomy
from config.settings import load_settings
from gateway.intake import STORE_JOB, STORE_JOB_TIMEOUT
from normalizer import Rules
from tests.conftest import settings_env, start_worker
from tests.fakes.stack import sms_complaint
from tests.faults.test_fault_injection import busy_worker_pid
from tests.helpers import messages_stored
from workers.db import make_engine, upgrade
from workers.worker import AduanQueue, AduanWorker

BATCH = 300


def test_a_worker_told_to_stop_finishes_its_job_first(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    queue_name = f"sigterm-{secrets.token_hex(3)}"
    env = settings_env(tmp_path, redis_url, database_url, ADUAN_QUEUE=queue_name)
    settings = load_settings(env)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    sids = ["SM" + secrets.token_hex(16) for _ in range(BATCH)]
    batch = [
        sms_complaint(rules, f"Lampu jalan mati di gang {i}", sid=sid).to_dict()
        for i, sid in enumerate(sids)
    ]
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        queue.enqueue(STORE_JOB, batch, job_timeout=STORE_JOB_TIMEOUT)
        deadline = time.monotonic() + 30
        while busy_worker_pid(redis_url, queue_name, {worker.pid}) is None:
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.01)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        connection.close()
    stored = messages_stored(engine, sids)
    engine.dispose()
    assert stored == BATCH, "the job in hand was finished before the worker stopped"


def _stay_up(ready: multiprocessing.synchronize.Event) -> None:
    """A scheduler process stuck for good: it ignores SIGTERM and never returns."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    while True:
        time.sleep(1)


def test_a_scheduler_process_that_will_not_stop_does_not_keep_its_worker_up(
    redis_url: str,
) -> None:
    """A stopping worker stops its RQ scheduler process; one that ignores SIGTERM (stuck
    on a lock it was forked holding) is killed, instead of the worker waiting for ever."""
    connection = redis.Redis.from_url(redis_url)
    queue = AduanQueue(f"stuck-scheduler-{secrets.token_hex(3)}", connection=connection)
    worker = AduanWorker([queue], connection=connection)
    worker.scheduler = RQScheduler([queue], connection=connection)
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    process = fork.Process(target=_stay_up, args=(ready,), daemon=True)
    process.start()
    try:
        assert ready.wait(10)
        worker.scheduler._process = process
        worker.stop_scheduler()
        assert not process.is_alive()
        assert process.exitcode == -signal.SIGKILL
    finally:
        if process.is_alive():
            process.kill()
        connection.close()
