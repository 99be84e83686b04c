"""Operator accounts and console sessions: argon2 passwords, server-side sessions in Redis,
signed cookies, CSRF tokens, roles.

A session lives in Redis under a hash of its token, so a copy of Redis holds no cookie
that would log anyone in. The cookie carries the token and an HMAC of it under the
secret key; a forged or altered cookie is refused before Redis is asked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workers import models
from workers.models import OPERATOR_ROLES

COOKIE = "aduan_console"
LOGIN_COOKIE = "aduan_console_login"
MAX_SESSION_SECONDS = 24 * 3600  # one duty shift: past it, log in again however busy
LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60
MIN_PASSWORD_LENGTH = 10

# What each role may do. Only the integrity officer may reveal a confidential reporter.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset(OPERATOR_ROLES),
    "act": frozenset(OPERATOR_ROLES),  # change status, reply, reassign topic, merge
    "reopen": frozenset({"supervisor", "admin"}),  # move a closed, rejected or merged case
    "unlink": frozenset({"supervisor", "admin"}),
    "export": frozenset({"supervisor", "admin"}),
    "reveal": frozenset({"integrity"}),
}

_hasher = PasswordHasher()
# Verified when the user does not exist, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class PasswordTooShort(ValueError):
    pass


def may(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordTooShort(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    return _hasher.hash(password)


def create_operator(session: Session, username: str, role: str, password: str) -> models.Operator:
    if role not in OPERATOR_ROLES:
        raise ValueError(f"Role must be one of: {', '.join(OPERATOR_ROLES)}.")
    name = username.strip()
    if not name or len(name) > 64 or not all(ch.isalnum() or ch in "._-" for ch in name):
        raise ValueError("A username is 1 to 64 letters, digits, '.', '_' or '-'.")
    taken = session.scalar(
        select(models.Operator.id).where(func.lower(models.Operator.username) == name.lower())
    )
    if taken is not None:
        raise ValueError(f"There is already an operator named {name!r}.")
    operator = models.Operator(
        username=name, role=role, password_hash=hash_password(password), active=True
    )
    session.add(operator)
    session.flush()
    return operator


def authenticate(session: Session, username: str, password: str) -> models.Operator | None:
    """The active operator with this name and password, or None; slow on purpose (argon2)."""
    operator = session.scalar(
        select(models.Operator).where(
            func.lower(models.Operator.username) == username.strip().lower()
        )
    )
    stored = operator.password_hash if operator is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if operator is None or not operator.active:
        return None
    if _hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = _hasher.hash(password)
    return operator


@dataclass(frozen=True)
class SessionData:
    token: str
    operator_id: int
    csrf: str
    lang: str
    created: float


class SessionStore:
    def __init__(self, redis: aioredis.Redis, secret_key: str, idle_seconds: int) -> None:
        self.redis = redis
        self.idle_seconds = idle_seconds
        self._key = hashlib.sha256(b"aduan-console-session\x00" + secret_key.encode()).digest()

    def _signature(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def cookie_value(self, token: str) -> str:
        return f"{token}.{self._signature(token)}"

    def token_of(self, cookie: str | None) -> str | None:
        token, _, signature = (cookie or "").partition(".")
        if token and signature and hmac.compare_digest(signature, self._signature(token)):
            return token
        return None

    def login_csrf(self, login_token: str) -> str:
        """The log-in form's token: bound to a cookie of its own, before any session exists."""
        return self._signature(f"login:{login_token}")

    @staticmethod
    def _redis_key(token: str) -> str:
        return f"aduan:console:session:{hashlib.sha256(token.encode()).hexdigest()}"

    async def create(self, operator_id: int, lang: str) -> SessionData:
        token = secrets.token_urlsafe(32)
        now = time.time()
        data = SessionData(token, operator_id, secrets.token_urlsafe(32), lang, now)
        key = self._redis_key(token)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "operator_id": operator_id,
                    "csrf": data.csrf,
                    "lang": lang,
                    "created": now,
                    "seen": now,
                },
            )
            pipe.expire(key, self.idle_seconds + 60)
            await pipe.execute()
        return data

    async def load(self, token: str | None, *, touch: bool = True) -> SessionData | None:
        """The live session for a token; an idle or too old one is ended here.

        `touch` marks the operator active: a page or a form does, the live feed does not,
        so an unattended intake screen still logs out.
        """
        if token is None:
            return None
        key = self._redis_key(token)
        raw = await self.redis.hgetall(key)
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        now = time.time()
        try:
            seen, created = float(fields["seen"]), float(fields["created"])
            data = SessionData(
                token, int(fields["operator_id"]), fields["csrf"], fields.get("lang", "id"), created
            )
        except (KeyError, ValueError):
            await self.redis.delete(key)
            return None
        if now - seen > self.idle_seconds or now - created > MAX_SESSION_SECONDS:
            await self.redis.delete(key)
            return None
        if touch:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "seen", now)
                pipe.expire(key, self.idle_seconds + 60)
                await pipe.execute()
        return data

    async def set_lang(self, token: str, lang: str) -> None:
        await self.redis.hset(self._redis_key(token), "lang", lang)

    async def delete(self, token: str) -> None:
        await self.redis.delete(self._redis_key(token))

    # Log-in throttling: per name and address, so a stranger cannot lock an operator out
    # from elsewhere, and a guesser gets ten tries a quarter of an hour.
    @staticmethod
    def _failures_key(username: str, remote: str | None) -> str:
        digest = hashlib.sha256(f"{username.strip().lower()}\x00{remote}".encode()).hexdigest()
        return f"aduan:console:login-failures:{digest}"

    async def too_many_failures(self, username: str, remote: str | None) -> bool:
        count = await self.redis.get(self._failures_key(username, remote))
        return count is not None and int(count) >= LOGIN_FAILURES_ALLOWED

    async def failed(self, username: str, remote: str | None) -> None:
        key = self._failures_key(username, remote)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, LOGIN_FAILURE_WINDOW_SECONDS)
            await pipe.execute()

    async def succeeded(self, username: str, remote: str | None) -> None:
        await self.redis.delete(self._failures_key(username, remote))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
