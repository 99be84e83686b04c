"""Rate limits per IP and per sender, kept in Redis so they hold across gateway processes.

Fixed windows: one INCR and one EXPIRE per check, in one round trip. When Redis is
unreachable the limiter lets requests through — the spool keeps them, and refusing
residents because our queue is down would be the wrong failure.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from config.limits import Limit


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


class RateLimiter:
    def __init__(self, client: aioredis.Redis, limits: dict[str, Limit]) -> None:
        self.client = client
        self.limits = limits

    async def hit(self, scope: str, identity: str) -> Verdict:
        limit = self.limits.get(scope)
        if limit is None or limit.count == 0:
            return Verdict(True)
        now = int(time.time())
        window = now - now % limit.seconds
        # Identities (IPs, phone numbers) are hashed: no address is readable in Redis keys.
        digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
        key = f"aduan:rl:{scope}:{digest}:{window}"
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, limit.seconds + 1)
            count, _ = await pipe.execute()
        except redis.RedisError:
            return Verdict(True)
        if int(count) > limit.count:
            return Verdict(False, retry_after=max(1, window + limit.seconds - now))
        return Verdict(True)
