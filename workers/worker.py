"""Running an RQ worker for aduan's queue."""

from __future__ import annotations

import logging

import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from config.settings import Settings
from workers.context import Context, install

# A worker that died mid-job is found by another worker's maintenance task; RQ's
# default of 600 s is far too long for a complaint service, so look every 15 s.
MAINTENANCE_INTERVAL = 15


def run_worker(settings: Settings, redis_url: str, *, burst: bool = False) -> bool:
    context = Context(settings, redis_url)
    install(context)
    connection = redis.Redis.from_url(redis_url)
    # SimpleWorker runs jobs in its own process: no fork per job (several times the
    # throughput of the forking Worker); jobs are idempotent, so a crash only retries.
    worker = SimpleWorker(
        [settings.queue_name],
        connection=connection,
        serializer=JSONSerializer,
        maintenance_interval=MAINTENANCE_INTERVAL,
        worker_ttl=60,
    )
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING"))
