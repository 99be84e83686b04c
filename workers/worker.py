"""Running an RQ worker for aduan's queue."""

from __future__ import annotations

import logging
import time

import redis
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from config.settings import Settings
from workers.context import Context, install

# A worker that died mid-job is found by another worker's maintenance task; RQ's
# default of 600 s is far too long for a complaint service, so look every 15 s.
MAINTENANCE_INTERVAL = 15
# An idle worker wakes (and so runs maintenance) every worker_ttl - 15 seconds.
WORKER_TTL = 30
# How long past its timeout a started job counts as running. RQ adds 60 s, for forking
# workers whose monitor extends the heartbeat; a SimpleWorker runs the job itself and
# kills it at its timeout, so a job still "started" a few seconds later is abandoned.
ABANDONED_GRACE = 5
RECONNECT_SECONDS = 1.0
log = logging.getLogger("aduan.worker")


class AduanWorker(SimpleWorker):
    """RQ's SimpleWorker, with a job orphaned by a killed worker recovered within
    timeout + ABANDONED_GRACE + MAINTENANCE_INTERVAL seconds instead of timeout + 60 + 600."""

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout and job.timeout > 0:
            return int(max(job.timeout - working_time, 1)) + ABANDONED_GRACE
        return int(self.job_monitoring_interval) + ABANDONED_GRACE


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
            worker = AduanWorker(
                [settings.queue_name],
                connection=connection,
                serializer=JSONSerializer,
                maintenance_interval=MAINTENANCE_INTERVAL,
                worker_ttl=WORKER_TTL,
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
