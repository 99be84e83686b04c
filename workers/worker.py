"""Running an RQ worker for aduan's queue."""

from __future__ import annotations

import logging
import signal
import time
from datetime import UTC, datetime, timedelta

import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from workers.context import Context, current, install, reply_queue_name

# A worker that died mid-job is found by another worker's maintenance task; RQ's
# default of 600 s is far too long for a complaint service, so look every 15 s.
MAINTENANCE_INTERVAL = 15
# An idle worker wakes (and so runs maintenance) every worker_ttl - 15 seconds.
WORKER_TTL = 30
# How long past its timeout a started job counts as running. RQ adds 60 s, for forking
# workers whose monitor extends the heartbeat; a SimpleWorker runs the job itself and
# kills it at its timeout, so a job still "started" a few seconds later is abandoned.
ABANDONED_GRACE = 5
# A job a worker took off the queue (RQ moves it to an "intermediate" list first) but never
# registered as started — Redis restarted or the worker was killed between the two — is
# put back by RQ only after a minute; here once it has been seen stuck this long.
STUCK_SECONDS = 10
RECONNECT_SECONDS = 1.0
log = logging.getLogger("aduan.worker")


class AduanWorker(SimpleWorker):
    """RQ's SimpleWorker, with a job orphaned by a killed worker recovered within
    timeout + ABANDONED_GRACE + MAINTENANCE_INTERVAL seconds instead of timeout + 60 + 600."""

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        if job.timeout and job.timeout > 0:
            return int(max(job.timeout - working_time, 1)) + ABANDONED_GRACE
        return int(self.job_monitoring_interval) + ABANDONED_GRACE

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        from workers.replies import sweep

        try:
            sweep(current())  # replies committed while the queue was down
        except (SQLAlchemyError, redis.RedisError, OSError):
            # Only these: RQ's StopRequested (a warm shutdown asked for while the worker is
            # idle) is an exception too, and swallowing it here would keep the worker up.
            log.warning("the delivery sweep failed; it runs again next time", exc_info=True)

    def clean_registries(self) -> None:
        super().clean_registries()  # type: ignore[no-untyped-call]
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                try:
                    self._rescue_stuck_jobs(queue)
                finally:
                    queue.release_maintenance_lock()  # type: ignore[no-untyped-call]

    def _rescue_stuck_jobs(self, queue: Queue) -> None:
        intermediate = queue.intermediate_queue
        for job_id in intermediate.get_job_ids():
            if job_id in queue.started_job_registry:
                continue
            first_seen = intermediate.get_first_seen(job_id)
            if first_seen is None:
                intermediate.set_first_seen(job_id)
                continue
            if datetime.now(UTC) - first_seen < timedelta(seconds=STUCK_SECONDS):
                continue
            job = queue.fetch_job(job_id)
            if job is not None:
                # As RQ does after its minute: a failure, so the job's Retry puts it back.
                self.handle_job_failure(
                    job, queue, exc_string="Job was stuck in the intermediate queue."
                )
                log.warning("job %s was stuck between queue and worker; retried", job_id)
            intermediate.remove(job_id)


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
                # In this order: RQ takes from the first queue that has a job.
                [reply_queue_name(settings.queue_name), settings.queue_name],
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
            # RQ's handlers ask Redis whether a job is running before they stop the worker;
            # with Redis gone that never answers. No job runs here: stop at once.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            time.sleep(RECONNECT_SECONDS)
        finally:
            connection.close()
