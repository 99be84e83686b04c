"""Running an RQ worker for aduan's queue."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from rq.utils import as_text
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from workers.context import Context, current, install, reply_queue_name
from workers.replies import REPLY_LANES

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
# An idle worker blocks on the last of its queues (the store queue, where gateways put
# work) for this long at a time, then looks at the others (replies) again.
IDLE_SLICE_SECONDS = 0.5
# A worker stopping gives its scheduler process this long to stop before killing it.
SCHEDULER_STOP_SECONDS = 5
log = logging.getLogger("aduan.worker")


class AduanQueue(Queue):
    """A queue whose workers take jobs from several queues without ever holding one that
    Redis has forgotten.

    RQ takes a job from one queue with (B)LMOVE into an "intermediate" list, where a job
    is found again if its worker dies before registering it as started. From several
    queues RQ uses BLPOP instead, and a worker killed (or a Redis that dies) between the
    pop and the registration loses the job for good. The fault-injection suite lost an
    acknowledged complaint that way once workers served the reply queue as well.

    Here each queue, in priority order, gets a non-blocking LMOVE; when all are empty
    the worker blocks on the last one for IDLE_SLICE_SECONDS at a time. Replies are
    enqueued by the workers themselves right after a store, so the non-blocking look
    finds them at once; an operator's reply from the console waits at most a slice.

    A ReplyLane's queue class (with its `lane`) takes this path for one queue too: it
    stops between slices once the lane is stopping (no signal reaches its thread), and it
    looks only while its lane may take a job (LaneGate).
    """

    lane: ClassVar[ReplyLane | None] = None

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: redis.Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        ordered = list(queues)
        lane = cls.lane
        if len(ordered) <= 1 and lane is None:
            return super().dequeue_any(
                ordered, timeout, connection, job_class, serializer, death_penalty_class
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if lane is not None:
                if lane.stopping.is_set():
                    raise StopRequested()
                if not lane.gate.wait_open(lane.index, IDLE_SLICE_SECONDS):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise DequeueTimeout(timeout, [q.key for q in ordered])
                    continue
            for queue in ordered:
                moved = cls.lmove(connection, queue.key, None)
                if moved is not None:
                    break
            else:
                if deadline is None:
                    return None  # burst mode: nothing anywhere
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DequeueTimeout(timeout, [q.key for q in ordered])
                last = ordered[-1]
                # Redis (6+) takes a fractional timeout; redis-py's annotation says int.
                wait: Any = min(IDLE_SLICE_SECONDS, remaining)
                job_id = connection.blmove(last.key, last.intermediate_queue_key, wait)
                if job_id is None:
                    continue
                moved = (last.key, job_id)
            queue_key, job_id = (as_text(part) for part in moved)
            found = cls._fetch_dequeued_job(
                connection,
                queue_key,
                job_id,
                job_class=job_class,
                serializer=serializer,
                death_penalty_class=death_penalty_class,
            )
            if found is not None:
                return found
            # The job was deleted meanwhile: look again, from the first queue.


class AduanWorker(SimpleWorker):
    """RQ's SimpleWorker, with a job orphaned by a killed worker recovered within
    timeout + ABANDONED_GRACE + MAINTENANCE_INTERVAL seconds instead of timeout + 60 + 600,
    and jobs taken from several queues as safely as from one (AduanQueue)."""

    queue_class = AduanQueue
    # Queues whose scheduled jobs (retries waiting out their interval) this worker's
    # scheduler puts back when due, besides its own: the reply queue, which the process's
    # ReplyLane serves with a worker that runs no scheduler.
    scheduled_too: tuple[str, ...] = ()

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        served = self.queues
        self.queues = [
            *served,
            *(
                self.queue_class(name, connection=self.connection, serializer=self.serializer)
                for name in self.scheduled_too
            ),
        ]
        try:
            super()._start_scheduler(*args, **kwargs)
        finally:
            self.queues = served

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # RQ clears the intermediate list here only for a worker of one queue, since only
        # then did it fill it; AduanQueue fills it from every queue.
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def stop_scheduler(self) -> None:
        """Stop this worker's scheduler process: SIGTERM, and SIGKILL if it has not stopped
        within SCHEDULER_STOP_SECONDS. RQ waits for it without a limit, at a warm shutdown
        and in the SIGTERM handler; the scheduler is forked from a worker whose other
        threads may hold a lock the child then waits for forever, and a worker once never
        stopped that way."""
        process = self.scheduler._process if self.scheduler is not None else None
        if process is None or not process.pid:
            return
        process.terminate()
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            log.warning(
                "the scheduler process did not stop within %s s; killed", SCHEDULER_STOP_SECONDS
            )
            process.kill()
            process.join(SCHEDULER_STOP_SECONDS)

    def unsubscribe(self) -> None:
        """RQ's, with its command listener told to stop before the UNSUBSCRIBE, not after.

        RQ unsubscribes, then stops the listener thread. Since redis-py 8, stop() waits for
        the thread; a thread that has just read the UNSUBSCRIBE's answer loops once more
        and waits up to 60 s for a subscription that never comes. A stopping worker hung
        that long, now and then, after its last job."""
        thread = self.pubsub_thread
        if thread is None:
            return
        thread._running.clear()  # what stop() does, without waiting (redis-py 5 to 8)
        self.pubsub.unsubscribe()
        thread.join(timeout=1)
        self.pubsub.close()

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


class LaneGate:
    """Which of a worker's ReplyLanes may take a job: lane k only while k lanes are in one.

    Lanes are there for a provider that takes its time: while the first lanes wait for
    its answers, the next ones send more. With a provider that answers at once, the first
    lane keeps up and the others stay out of the way; a dozen reply jobs at once would
    only queue for the database (and, on SQLite, its one write lock) ahead of the storing
    of complaints.
    """

    def __init__(self) -> None:
        self.busy = 0
        self.changed = threading.Condition()

    def wait_open(self, index: int, timeout: float) -> bool:
        """Whether lane `index` may take a job, waiting up to `timeout` s for it."""
        with self.changed:
            return self.changed.wait_for(lambda: self.busy >= index, timeout)

    @contextmanager
    def working(self) -> Iterator[None]:
        with self.changed:
            self.busy += 1
            self.changed.notify_all()
        try:
            yield
        finally:
            with self.changed:
                self.busy -= 1
                self.changed.notify_all()


class _LaneWorker(AduanWorker):
    """An AduanWorker on a thread of its own: the process's signals are the main
    worker's (which stops the lane), and a job's timeout cannot be SIGALRM, which only
    the main thread receives. It listens for no RQ commands: those are for processes."""

    death_penalty_class = TimerDeathPenalty
    gate: LaneGate  # set by its ReplyLane before work()

    def _install_signal_handlers(self) -> None:
        return None

    def subscribe(self) -> None:
        return None

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self.gate.working():
            super().execute_job(job, queue)


class ReplyLane:
    """The reply queue, served on a thread of the worker process by an RQ worker of its
    own, while the main thread stores complaints.

    A provider takes hundreds of milliseconds to answer, and one that is down may not
    answer at all until a send times out. Served by the same loop as the store queue,
    that wait held up the storing of every complaint behind it: operators on duty would
    not see a flood's complaints while Twilio was slow. On lanes of their own, replies
    wait for the provider and nothing else does.

    A worker runs up to REPLY_LANES of them (LaneGate opens them as they are needed). A
    reply job holds the replies of one store batch, often only a few when complaints come
    steadily, and a lane runs one job at a time: with Twilio answering in 300 ms, one
    lane would send a handful of replies a second. The lanes' sends share the process's
    SEND_THREADS threads, a group's worth for each lane (workers.replies). Sends are I/O:
    a lane costs the process a thread, not a CPU.

    `stop()` asks for a warm stop, `join()` waits for it: a job in hand is finished (its
    replies recorded), then the lane's worker leaves RQ's registry.
    """

    def __init__(self, settings: Settings, redis_url: str, index: int, gate: LaneGate) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.index = index
        self.gate = gate
        self.stopping = threading.Event()
        self.queue_class = type("LaneQueue", (AduanQueue,), {"lane": self})
        self.worker: _LaneWorker | None = None
        self.thread = threading.Thread(target=self._run, name=f"aduan-replies-{index}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        worker = self.worker
        if worker is not None:
            worker._stop_requested = True  # RQ's warm-stop flag, read between jobs

    def join(self) -> None:
        self.thread.join()

    def _run(self) -> None:
        while not self.stopping.is_set():
            connection = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
            try:
                self.worker = _LaneWorker(
                    [reply_queue_name(self.settings.queue_name)],
                    connection=connection,
                    serializer=JSONSerializer,
                    maintenance_interval=MAINTENANCE_INTERVAL,
                    worker_ttl=WORKER_TTL,
                    queue_class=self.queue_class,
                )
                self.worker.gate = self.gate
                if self.stopping.is_set():
                    return
                self.worker.work(logging_level="WARNING")
            except Exception:
                # Redis went away, or RQ's loop ended on an error: the lane comes back,
                # as the main worker does, instead of leaving replies unsent.
                log.warning("the reply lane stopped; it starts again", exc_info=True)
            finally:
                connection.close()
            self.stopping.wait(RECONNECT_SECONDS)


def run_worker(settings: Settings, redis_url: str, *, burst: bool = False) -> bool:
    """Serve the store queue until told to stop, and the reply queue on REPLY_LANES lanes.

    With `burst`, one loop takes from both queues, replies first, until both are empty
    (`aduan worker --burst`, used to drain a queue and by tests)."""
    context = Context(settings, redis_url)
    install(context)
    logging.getLogger("rq.worker").setLevel(logging.WARNING)
    gate = LaneGate()
    lanes = [] if burst else [ReplyLane(settings, redis_url, i, gate) for i in range(REPLY_LANES)]
    for lane in lanes:
        lane.start()
    try:
        return _serve(settings, redis_url, burst=burst, replies=not lanes)
    finally:
        for lane in lanes:
            lane.stop()
        for lane in lanes:
            lane.join()


def _serve(settings: Settings, redis_url: str, *, burst: bool, replies: bool) -> bool:
    worked = False
    queues = [settings.queue_name]
    if replies:
        queues.insert(0, reply_queue_name(settings.queue_name))  # RQ takes the first first
    while True:
        connection = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
        try:
            # SimpleWorker runs jobs in its own process: no fork per job (several times
            # the throughput of the forking Worker); jobs are idempotent, so a crash only
            # retries.
            worker = AduanWorker(
                queues,
                connection=connection,
                serializer=JSONSerializer,
                maintenance_interval=MAINTENANCE_INTERVAL,
                worker_ttl=WORKER_TTL,
            )
            if not replies:  # a ReplyLane serves them; their retries come due here
                worker.scheduled_too = (reply_queue_name(settings.queue_name),)
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
