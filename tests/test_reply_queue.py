"""A reporter's ticket reply does not wait behind a backlog of complaints to be stored.

Replies have a queue of their own that workers take from first (workers.context
.reply_queue_name): during a flood the store queue can hold minutes of work, and the
replies of complaints already stored should go out meanwhile.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from config.data import load_taxonomy
from config.settings import load_settings
from gateway.intake import STORE_JOB, STORE_JOB_TIMEOUT
from normalizer import Rules
from tests.conftest import ROOT, settings_env
from tests.fakes.stack import sms_complaint
from workers.context import Context
from workers.db import upgrade
from workers.replies import enqueue_deliveries, job_key
from workers.store import store

BACKLOG_JOBS = 4


def test_a_reply_is_sent_before_the_complaints_queued_ahead_of_it_are_stored(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    env = settings_env(
        tmp_path, redis_url, database_url, ADUAN_QUEUE=f"prio-{secrets.token_hex(3)}"
    )
    settings = load_settings(env)
    context = Context(settings, redis_url)
    upgrade(context.engine)
    rules = Rules(taxonomy=load_taxonomy(settings.topics_file))
    connection = redis.Redis.from_url(redis_url)
    try:
        # One complaint stored, its reply committed but not yet queued...
        [stored] = store(context, [sms_complaint(rules, "Lampu jalan mati di Jl. Pajajaran")])
        assert stored.deliveries
        # ...then a backlog of store jobs, and only then the reply's job.
        backlog = [
            context.queue.enqueue(
                STORE_JOB,
                [
                    sms_complaint(rules, f"Sampah menumpuk di gang {n}-{i}").to_dict()
                    for i in range(50)
                ],
                job_timeout=STORE_JOB_TIMEOUT,
            ).id
            for n in range(BACKLOG_JOBS)
        ]
        enqueue_deliveries(context, stored.deliveries)
        reply_job = connection.get(job_key(settings.queue_name, stored.deliveries[0]))
        assert reply_job is not None
        worker = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "worker", "--burst"],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert worker.returncode == 0, worker.stderr.decode()[-2000:]

        def started(job_id: str) -> object:
            job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
            assert job.get_status() == "finished", (job_id, job.get_status())
            return job.started_at

        reply_started = started(reply_job.decode())
        assert all(reply_started < started(job_id) for job_id in backlog)  # type: ignore[operator]
    finally:
        connection.close()
        context.engine.dispose()
