"""Running an RQ worker for aduan's queue."""

from __future__ import annotations

import logging
import time

import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from config.settings import Settings
from workers.context import Context, install

# A worker that died mid-job is found by another worker's maintenance task; RQ's
# default of 600 s is far too long for a complaint service, so look every 15 s.
MAINTENANCE_INTERVAL = 15
RECONNECT_SECONDS = 1.0
log = logging.getLogger("aduan.worker")


def run_worker(settings: Settings, redis_url: str, *, burst: bool = False) -> bool:
    context = Context(settings, redis_url)
    install(context)
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    worked = False
    while True:
        connection = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        try:
            # SimpleWorker runs jobs in its own process: no fork per job (several times
            # the throughput of the forking Worker); jobs are idempotent, so a crash only
            # retries.
            worker = SimpleWorker(
                [settings.queue_name],
                connection=connection,
                serializer=JSONSerializer,
                maintenance_interval=MAINTENANCE_INTERVAL,
                worker_ttl=60,
            )
            worked = (
                bool(worker.work(burst=burst, with_scheduler=not burst, logging_level="WARNING"))
                or worked
            )
            return worked  # a warm shutdown (SIGTERM/SIGINT) or an empty queue in burst mode
        except (redis.ConnectionError, redis.TimeoutError):
            # RQ quits its loop when Redis goes away; a complaint service waits for it to
            # come back instead of leaving acknowledged complaints in the queue unserved.
            log.warning("Redis connection lost; the worker reconnects in %s s", RECONNECT_SECONDS)
            time.sleep(RECONNECT_SECONDS)
        finally:
            connection.close()
