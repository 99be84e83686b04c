"""Intake: normalise, claim, enqueue durably, and (for the web and the app) wait for the ticket.

A complaint is acknowledged only once its job is in Redis. Enqueues are gathered for a
few milliseconds into one batch job, written in one round trip on a worker thread so
the event loop never blocks. While the workers are behind, a batch is gathered for
longer: those jobs would wait in the queue anyway, and a job of many complaints costs
the workers much less per complaint than many jobs of one.

A claim key (`SET NX`) in front of the queue turns a provider's retries and concurrent
copies into one job; the database's unique key has the final word when the claim has
expired, or when a copy finds the claim stalled and queues itself rather than risk
acknowledging a complaint nobody queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from channels.base import ChannelError, InboundMessage
from config.limits import Limit
from gateway import metrics
from gateway.ratelimit import RateLimiter
from gateway.spool import Spool
from normalizer import Complaint, InvalidContact, Rules, normalize
from workers.context import RESULTS_CHANNEL, result_key, results_of
from workers.crypto import Crypto

log = logging.getLogger("aduan.intake")

CLAIM_PENDING_SECONDS = 60
CLAIM_SECONDS = 7 * 24 * 3600
# A copy of a message waits this long for the first copy to be queued, then queues itself.
CLAIM_STALLED_SECONDS = 5
STORE_JOB = "workers.store.store_complaints"
STORE_JOB_TIMEOUT = 30
STORE_RETRY = Retry(max=10, interval=[1, 2, 5, 10, 20, 30, 60, 120, 300, 600])
# The workers are behind when this many store jobs wait in the queue.
BACKLOG_JOBS = 2


def claim_key(key: str) -> str:
    return f"aduan:claim:{key}"


# Claims go to Redis many at a time, each as one script (one command, one reply) rather
# than a command and a reply per claim, which in redis-py's Python cost more than the
# rest of the batch. KEYS are the claims; ARGV their values, then the expiry in seconds.
# EVAL, not EVALSHA: Redis keeps the compiled script, and a Redis restarted without it
# still answers (EVALSHA would need a SCRIPT EXISTS round trip before each batch).
_TAKE_CLAIMS = """
local ttl = ARGV[#KEYS + 1]
local won = {}
for i, key in ipairs(KEYS) do
  won[i] = redis.call('SET', key, ARGV[i], 'NX', 'EX', ttl) and 1 or 0
end
return won
"""
_SET_CLAIMS = """
local ttl = ARGV[#KEYS + 1]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i], 'EX', ttl)
end
return #KEYS
"""


def _may_be_confidential(complaint: Complaint) -> bool:
    """A message that points at an existing case (STATUS, a ticket number, an email or
    WhatsApp reply) may come from a confidential reporter about their confidential case:
    only the store can tell, so it travels sealed too. Otherwise "STATUS BGR-2026-R…"
    would sit in Redis next to the number that sent it."""
    return bool(complaint.command or complaint.ticket_ref or complaint.reply_to)


class QueueUnavailable(Exception):
    """The complaint could not be made durable: the caller must not acknowledge it."""


@dataclass(frozen=True)
class IntakeResult:
    key: str
    complaint: Complaint
    duplicate: bool
    outcome: dict[str, Any] | None  # the store job's answer, when we waited for it
    spooled: bool = False

    @property
    def ticket(self) -> str | None:
        return None if self.outcome is None else self.outcome.get("ticket")


class _Batcher:
    """Gathers complaints for a moment and enqueues them as one job, in a thread.

    `linger` while the workers keep up, so a quiet system answers at once. While they are
    behind (the queue held BACKLOG_JOBS or more at the last enqueue), those jobs wait in
    the queue anyway, and a job of many complaints costs the workers much less per
    complaint (a store job of 64 cost a fifth less CPU per complaint than two of 32,
    benchmarks/README.md). So a batch is gathered for as long as complaints are on their
    way to it: it goes when `backlog_batch` are in; when at least `backlog_least` are in
    and no other complaint is being claimed (`coming`), or none came for `backlog_gap`;
    or at the latest `backlog_linger` after its first. A sender that waits for its
    answers before it sends more (a provider with a few connections open) is answered as
    soon as all it sent is in."""

    def __init__(
        self,
        queue: Queue,
        max_batch: int = 100,
        linger: float = 0.002,
        backlog_linger: float = 0.1,
        backlog_batch: int = 100,
        backlog_gap: float = 0.005,
        backlog_least: int = 32,
    ) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self.linger = linger
        self.backlog_linger = backlog_linger
        self.backlog_batch = backlog_batch
        self.backlog_gap = backlog_gap
        self.backlog_least = backlog_least
        self.backlogged = False
        self._items: list[tuple[dict[str, Any], tuple[str, str], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._last_put = 0.0
        self._coming = 0  # complaints on their way to `put` (`coming`)

    @contextlib.contextmanager
    def coming(self) -> Iterator[Callable[[], None]]:
        """Around a complaint's way to `put` (its claim): while none is on its way, a
        backlogged batch of `backlog_least` or more need not wait for the gap. Yields what
        `put` calls once the complaint is in the batch."""
        self._coming += 1
        arrived = False

        def arrive() -> None:
            nonlocal arrived
            if not arrived:
                arrived = True
                self._coming -= 1

        try:
            yield arrive
        finally:
            arrive()

    async def put(
        self,
        complaint: dict[str, Any],
        claim: tuple[str, str],
        arrived: Callable[[], None] | None = None,
    ) -> None:
        """Enqueue `complaint` with others; `claim` (key, value) is set in the same
        transaction, so a copy of the message sees it queued exactly when it is.
        `arrived`: what `coming` gave for this complaint."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._items.append((complaint, claim, future))
        self._last_put = loop.time()
        if arrived is not None:
            arrived()
        full = self.backlog_batch if self.backlogged else self.max_batch
        if len(self._items) >= full or (
            self.backlogged and self._coming == 0 and len(self._items) >= self.backlog_least
        ):
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        await future

    async def _flush_later(self) -> None:
        if not self.backlogged:
            await asyncio.sleep(self.linger)
        else:
            loop = asyncio.get_running_loop()
            latest = loop.time() + self.backlog_linger
            while True:
                now = loop.time()
                quiet_at = self._last_put + self.backlog_gap
                if now >= latest:
                    break
                if now >= quiet_at:
                    if len(self._items) >= self.backlog_least:
                        break
                    quiet_at = now + self.backlog_gap  # too few yet: look again later
                await asyncio.sleep(min(latest, quiet_at) - now)
        self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        if self._flusher is not None:  # the next batch gets a whole wait of its own
            self._flusher.cancel()
            self._flusher = None
        items, self._items = self._items, []
        if items:
            asyncio.create_task(self._enqueue(items))  # noqa: RUF006 - futures keep it observed

    async def _enqueue(
        self, items: list[tuple[dict[str, Any], tuple[str, str], asyncio.Future[None]]]
    ) -> None:
        batch = [complaint for complaint, _, _ in items]
        claims = [claim for _, claim, _ in items]
        try:
            await asyncio.to_thread(self.enqueue_sync, batch, claims)
        except Exception as exc:
            for _, _, future in items:
                if not future.done():
                    future.set_exception(QueueUnavailable(str(exc)))
            return
        for _, _, future in items:
            if not future.done():
                future.set_result(None)

    def enqueue_sync(
        self, batch: list[dict[str, Any]], claims: Iterable[tuple[str, str]] = ()
    ) -> None:
        """One store job for the batch, and its claims marked queued: one round trip,
        which also tells how many jobs wait for the workers."""
        with self.queue.connection.pipeline() as pipe:
            self.queue.enqueue_call(
                STORE_JOB,
                args=(batch,),
                job_id=f"store-{uuid.uuid4().hex}",
                retry=STORE_RETRY,
                # A worker that dies mid-job is found once the job's heartbeat lapses
                # (workers.worker.AduanWorker): keep the timeout short.
                timeout=STORE_JOB_TIMEOUT,
                result_ttl=3600,
                failure_ttl=30 * 24 * 3600,
                description=f"store {len(batch)} complaint(s)",
                pipeline=pipe,
            )
            claimed = list(claims)
            if claimed:
                keys = [key for key, _ in claimed]
                pipe.eval(_SET_CLAIMS, len(keys), *keys, *(v for _, v in claimed), CLAIM_SECONDS)
            pipe.llen(self.queue.key)
            waiting = pipe.execute()[-1]
        self.backlogged = int(waiting) >= BACKLOG_JOBS


class _Claims:
    """Takes claims (`SET NX`) for every message that asks in one turn of the event loop,
    in one round trip and one command (`_TAKE_CLAIMS`): under load, dozens of requests
    reach their claim in the same turn, and a command each cost a sixth of the gateway's
    time per request.

    One round trip is out at a time: the claims asked while it is out go together as soon
    as it is back (as a database's group commit does). A quiet gateway sends each claim at
    once; a busy one sends fewer, larger round trips (about 10 claims each rather than 4
    at 4,000 webhooks/s), which cost the gateway and Redis less per claim."""

    def __init__(self, redis_client: aioredis.Redis) -> None:
        self.redis = redis_client
        self._asking: list[tuple[str, str, asyncio.Future[bool]]] = []
        self._out = False  # a round trip is out: what is asked now waits for it

    async def take(self, key: str, value: str) -> bool:
        """Whether this copy won `key` (set to `value` for CLAIM_PENDING_SECONDS)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._asking.append((key, value, future))
        if len(self._asking) == 1 and not self._out:
            loop.call_soon(self._send)  # after the rest of this turn's requests
        return await future

    def _send(self) -> None:
        if self._out or not self._asking:
            return
        asking, self._asking = self._asking, []
        self._out = True
        task = asyncio.create_task(self._ask(asking))
        task.add_done_callback(self._back)

    def _back(self, _: asyncio.Task[None]) -> None:
        self._out = False
        self._send()  # what was asked meanwhile

    async def _ask(self, asking: list[tuple[str, str, asyncio.Future[bool]]]) -> None:
        try:
            keys = [key for key, _, _ in asking]
            values = [value for _, value, _ in asking]
            won = await self.redis.eval(
                _TAKE_CLAIMS, len(keys), *keys, *values, CLAIM_PENDING_SECONDS
            )
        except BaseException as exc:  # nobody may be left waiting, whatever happened
            error = QueueUnavailable(str(exc)) if isinstance(exc, redis.RedisError) else exc
            for _, _, future in asking:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), result in zip(asking, won, strict=True):
            if not future.done():
                future.set_result(bool(result))


class Intake:
    def __init__(
        self,
        redis_url: str,
        rules: Rules,
        queue_name: str,
        spool: Spool | None = None,
        limits: dict[str, Limit] | None = None,
        crypto: Crypto | None = None,
    ) -> None:
        self.crypto = crypto
        self.rules = rules
        self.spool = spool
        self._drainer: asyncio.Task[None] | None = None
        timeouts: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 10}
        self.redis = aioredis.Redis.from_url(redis_url, **timeouts)
        self.sync_redis = redis.Redis.from_url(redis_url, **timeouts)
        # The subscription waits for results indefinitely: no read timeout on it.
        self._pubsub_redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2)
        self.limiter = RateLimiter(self.redis, limits or {})
        self.queue = Queue(queue_name, connection=self.sync_redis, serializer=JSONSerializer)
        self.batcher = _Batcher(self.queue)
        self.claims = _Claims(self.redis)
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())
        if self.spool is not None:
            self._drainer = asyncio.create_task(self._drain_forever())

    async def close(self) -> None:
        self._closing = True
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        if self._listener is not None:
            self._listener.cancel()
            # redis-py may turn a cancellation inside a read into a connection error.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._listener, 5)
        await self.redis.aclose()
        await self._pubsub_redis.aclose()
        self.sync_redis.close()

    async def _listen(self) -> None:
        """One subscription per process carries every store result to whoever waits."""
        while True:
            try:
                async with self._pubsub_redis.pubsub() as pubsub:
                    await pubsub.subscribe(RESULTS_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        for outcome in results_of(message["data"]):
                            for future in self._waiters.pop(outcome.get("key", ""), []):
                                if not future.done():
                                    future.set_result(outcome)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._closing:
                    return
                log.warning("result subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)

    def payload(self, complaint: Complaint) -> dict[str, Any]:
        """What goes into the queue or the spool. A confidential complaint travels sealed:
        Redis's append-only file and the spool are disk too, and "encrypted at rest"
        means there as well."""
        if self.crypto is None or not (complaint.confidential or _may_be_confidential(complaint)):
            return complaint.to_dict()
        return {
            "idempotency_key": complaint.idempotency_key,
            "sealed": self.crypto.seal(complaint.to_dict()),
        }

    def normalize(self, message: InboundMessage) -> Complaint:
        try:
            return normalize(message, self.rules)
        except InvalidContact as exc:
            raise ChannelError(400, "invalid", exc.message, exc.field) from None

    async def submit(
        self,
        messages: Iterable[InboundMessage],
        *,
        wait: float | None = None,
        content_check: bool = False,
    ) -> list[IntakeResult]:
        complaints = [self.normalize(m) for m in messages]
        if len(complaints) == 1:  # the usual case: no task to gather one result
            return [await self._submit_one(complaints[0], wait, content_check)]
        results = await asyncio.gather(
            *(self._submit_one(c, wait, content_check) for c in complaints)
        )
        return list(results)

    async def _submit_one(
        self, complaint: Complaint, wait: float | None, content_check: bool
    ) -> IntakeResult:
        started = time.perf_counter()
        key = complaint.idempotency_key
        digest = hashlib.sha256(
            json.dumps([complaint.text, complaint.reporter.address, complaint.topic]).encode()
        ).hexdigest()[:16]
        future = self._register(key) if wait else None
        try:
            state = await self._claim_and_enqueue(complaint, digest, content_check)
            metrics.INTAKE.labels(complaint.channel, state).inc()
            # Never the reporter here, not even at DEBUG: a confidential reporter's
            # identity must reach no log (DESIGN.md); the key is enough to follow it.
            log.debug(
                "%s message %s: %s%s",
                complaint.channel,
                key,
                state,
                " (confidential)" if complaint.confidential else "",
            )
            metrics.ACK_SECONDS.labels(complaint.channel).observe(time.perf_counter() - started)
            outcome = None
            if future is not None and wait and state != "spooled":
                outcome = await self._await_result(key, future, wait)
            return IntakeResult(key, complaint, state == "duplicate", outcome, state == "spooled")
        finally:
            if future is not None:
                self._unregister(key, future)

    async def check_ip_limit(self, remote: str | None) -> None:
        verdict = await self.limiter.hit("ip", remote or "unknown")
        if not verdict.allowed:
            raise ChannelError(
                429,
                "rate_limited",
                f"Too many requests from this address; try again in {verdict.retry_after} s.",
                retry_after=verdict.retry_after,
            )

    async def _check_sender_limit(self, complaint: Complaint) -> None:
        """Called once this copy won the message's claim: a provider's retry of a message
        we already have is never counted."""
        address = complaint.reporter.address
        if address is None:
            return
        verdict = await self.limiter.hit(complaint.channel, address)
        if not verdict.allowed:
            raise ChannelError(
                429,
                "rate_limited",
                f"Too many messages from this sender; try again in {verdict.retry_after} s.",
                retry_after=verdict.retry_after,
            )

    async def _claim_and_enqueue(
        self, complaint: Complaint, digest: str, content_check: bool
    ) -> str:
        try:
            duplicate = await self._claim_and_enqueue_to_redis(complaint, digest, content_check)
            return "duplicate" if duplicate else "queued"
        except QueueUnavailable:
            if self.spool is None:
                raise
            # Redis is down: keep the complaint on local disk, acknowledge, drain later.
            await asyncio.to_thread(self.spool.write, self.payload(complaint))
            log.warning("queue unavailable; complaint spooled to disk")
            return "spooled"

    async def _claim_and_enqueue_to_redis(
        self, complaint: Complaint, digest: str, content_check: bool
    ) -> bool:
        with self.batcher.coming() as arrived:
            return await self._claim_and_put(complaint, digest, content_check, arrived)

    async def _claim_and_put(
        self,
        complaint: Complaint,
        digest: str,
        content_check: bool,
        arrived: Callable[[], None],
    ) -> bool:
        key = complaint.idempotency_key
        claim = claim_key(key)
        deadline = time.monotonic() + CLAIM_STALLED_SECONDS
        while True:
            won = await self.claims.take(claim, f"pending:{digest}")
            if won:
                try:
                    await self._check_sender_limit(complaint)
                    await self.batcher.put(
                        self.payload(complaint), (claim, f"queued:{digest}"), arrived
                    )
                except (QueueUnavailable, ChannelError):
                    with contextlib.suppress(redis.RedisError):
                        await self.redis.delete(claim)
                    raise
                return False
            try:
                current = await self.redis.get(claim)
            except redis.RedisError as exc:
                raise QueueUnavailable(str(exc)) from exc
            if current is None:
                continue  # the first copy gave up; try to take it over
            text = current.decode() if isinstance(current, bytes) else str(current)
            state, _, their_digest = text.partition(":")
            if content_check and their_digest != digest:
                raise ChannelError(
                    422,
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used for a different complaint.",
                    "Idempotency-Key",
                )
            if state == "queued":
                return True
            if time.monotonic() > deadline:
                # The first copy has held the claim this long without queuing it: its
                # gateway may have died or failed in between. Acknowledging this copy
                # as a duplicate could lose the complaint; queue it too, and the
                # store's unique key keeps exactly one.
                log.warning("message %s: its first copy stalled; this copy is queued", key)
                await self.batcher.put(
                    self.payload(complaint), (claim, f"queued:{digest}"), arrived
                )
                return False
            # The first copy is being enqueued right now: acknowledge only once it is.
            await asyncio.sleep(0.02)

    async def drain_spool(self, limit: int = 500) -> int:
        """Move spooled complaints into the queue; returns how many were moved."""
        if self.spool is None:
            return 0
        paths = await asyncio.to_thread(self.spool.pending, limit)
        if not paths:
            return 0
        loaded = [(p, await asyncio.to_thread(self.spool.read, p)) for p in paths]
        batch = [(p, c) for p, c in loaded if c is not None]
        if batch:
            claims = [(claim_key(c["idempotency_key"]), "queued:spool") for _, c in batch]
            await asyncio.to_thread(self.batcher.enqueue_sync, [c for _, c in batch], claims)
        await asyncio.to_thread(self.spool.remove, [p for p, _ in batch])
        log.info("drained %d spooled complaint(s) into the queue", len(batch))
        return len(batch)

    async def _drain_forever(self) -> None:
        while True:
            try:
                moved = await self.drain_spool()
            except (redis.RedisError, OSError):
                moved = 0
            await asyncio.sleep(0.05 if moved else 1.0)

    def _register(self, key: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        return future

    def _unregister(self, key: str, future: asyncio.Future[dict[str, Any]]) -> None:
        waiting = self._waiters.get(key)
        if waiting and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiters[key]

    async def _await_result(
        self, key: str, future: asyncio.Future[dict[str, Any]], wait: float
    ) -> dict[str, Any] | None:
        stored = await self.lookup(key)
        if stored is not None:
            return stored
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            return await self.lookup(key)

    async def lookup(self, key: str) -> dict[str, Any] | None:
        try:
            value = await self.redis.get(result_key(key))
        except redis.RedisError:
            return None
        return None if value is None else dict(json.loads(value))
