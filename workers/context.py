"""What a job needs at run time, built once per worker process from the settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config.data import Replies, load_replies
from config.settings import Settings, load_settings
from workers.crypto import Crypto
from workers.db import make_engine, session_factory

# Store results for the gateways waiting: each message is a JSON list of a batch's
# results (`results_of`), each {"key", "ticket", "status", "outcome"[, "receipt"]}.
RESULTS_CHANNEL = "aduan:results"


def results_of(data: bytes | str) -> list[dict[str, Any]]:
    """The results in a message on RESULTS_CHANNEL: a batch's list, or the one result a
    worker of an earlier version published per message. ValueError if it is neither."""
    found = json.loads(data)
    results = found if isinstance(found, list) else [found]
    if not all(isinstance(result, dict) for result in results):
        raise ValueError("not a list of results")
    return results


def reply_queue_name(queue_name: str) -> str:
    """Replies have a queue of their own, which workers take from first: a reporter's
    ticket SMS must not wait behind a backlog of complaints still to be stored."""
    return f"{queue_name}-replies"


def result_key(idempotency_key: str) -> str:
    return f"aduan:result:{idempotency_key}"


@dataclass
class Context:
    settings: Settings
    redis_url: str

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.effective_database_url, immediate=True)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    @cached_property
    def queue(self) -> Queue:
        return Queue(self.settings.queue_name, connection=self.redis, serializer=JSONSerializer)

    @cached_property
    def reply_queue(self) -> Queue:
        return Queue(
            reply_queue_name(self.settings.queue_name),
            connection=self.redis,
            serializer=JSONSerializer,
        )

    @cached_property
    def crypto(self) -> Crypto:
        return Crypto(self.settings.encryption_keys, self.settings.secret_key)

    @cached_property
    def replies(self) -> Replies:
        return load_replies(self.settings.replies_file)


_current: Context | None = None


def install(context: Context | None) -> None:
    """The context jobs run with in this process (None: built from the environment)."""
    global _current
    _current = context


def current() -> Context:
    global _current
    if _current is None:
        settings = load_settings(create_secrets=False)
        if settings.redis_url is None:
            raise RuntimeError("REDIS_URL must be set for a worker started outside `aduan`.")
        _current = Context(settings, settings.redis_url)
    return _current
