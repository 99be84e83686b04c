"""A worker of its own, configured to talk to fake providers, for end-to-end tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from channels.base import InboundMessage, Location
from config.settings import load_settings
from normalizer import Complaint, Rules, normalize
from tests.conftest import Stack, settings_env, start_worker, stop_process
from workers.db import make_engine, upgrade


@contextmanager
def provider_stack(
    redis_url: str, database_url: str, tmp: Path, **provider_env: str
) -> Iterator[Stack]:
    env = settings_env(
        tmp,
        redis_url,
        database_url,
        ADUAN_QUEUE=f"e2e-{secrets.token_hex(3)}",
        # Each test writes from numbers of its own; the limits are not what is tested here.
        ADUAN_RATE_LIMITS="ip=0/60,sms=0/60,whatsapp=0/60",
        **provider_env,
    )
    settings = load_settings(env)
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    engine.dispose()
    log = tmp / "worker.log"
    worker = start_worker(env, log)
    try:
        yield Stack(env, settings, worker, log)
    finally:
        stop_process(worker)


def phone_number() -> str:
    """A fresh Indonesian mobile number, so tests sharing a case store never meet."""
    return "+62812" + "".join(secrets.choice("0123456789") for _ in range(8))


def sms_complaint(
    rules: Rules, text: str, *, sid: str | None = None, location: Location | None = None
) -> Complaint:
    """An SMS from a fresh number, normalised as the gateway would, for the store's tests."""
    message = InboundMessage(
        channel="sms",
        provider="twilio",
        provider_message_id=sid or "SM" + secrets.token_hex(16),
        sender=phone_number(),
        text=text,
        location=location,
    )
    return normalize(message, rules)
