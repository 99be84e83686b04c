"""Engines for SQLite (embedded default) and PostgreSQL, and Alembic upgrades."""

from __future__ import annotations

import os
import threading
import time
from importlib import resources
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: writers wait in SQLite's busy handler, as without turns
    fcntl = None  # type: ignore[assignment]

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

# An execution option: a transaction that only reads, on an `immediate` SQLite engine,
# begins as SQLite's default (deferred) does and takes no write lock.
READ_ONLY = "aduan_read_only"


class WriteTurns:
    """Worker processes queue for an SQLite database's one write lock behind a file lock
    (`flock`), which the kernel hands to the next waiter the moment it is let go.

    SQLite itself lets a writer that finds the lock taken sleep and try again, 1, 2, 5, 10,
    then 15 to 100 ms later: with two workers taking turns every few tens of milliseconds,
    the lock stood free for much of that sleep. The file lock only orders the workers; the
    database's own lock still decides, and a writer that takes no turn (the gateway's
    console) waits in SQLite's busy handler as before."""

    def __init__(self, database: str) -> None:
        self.path = database + "-write-turn"
        self._fd: int | None = None
        self._pid = 0
        self._lock = threading.Lock()  # flock orders processes; this, a process's threads
        self.holder: object | None = None  # the pooled connection whose transaction has it

    def take(self, holder: object) -> None:
        """Wait for this process's turn, for `holder`'s transaction. Without a turn to
        take (no flock here, a file that cannot be opened, or 30 s waited in this
        process) the writer waits in SQLite's busy handler instead."""
        if self.holder is holder or fcntl is None or not self._lock.acquire(timeout=30):
            return
        try:
            if self._fd is None or self._pid != os.getpid():  # not a parent's descriptor
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError:
            self._lock.release()
            return
        self.holder = holder

    def give_back(self, holder: object) -> None:
        """`holder` is back in the pool: its transaction committed or rolled back."""
        if holder is None or self.holder is not holder:
            return
        self.holder = None
        if self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()


# A pooled connection to a database server that sat idle this long is asked first
# whether the server is still there (it may have restarted since).
PING_AFTER_IDLE_SECONDS = 1.0


def make_engine(
    url: str,
    *,
    immediate: bool = False,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
    **kwargs: Any,
) -> Engine:
    """`immediate`: SQLite transactions take the write lock when they begin, so workers
    that read before they write (bursts, incidents) are serialised, not racing. Except
    those begun with the READ_ONLY execution option. `ping_after_idle`: a PostgreSQL
    connection idle this many seconds is checked before use."""
    # A database error's message quotes the statement's parameters, and those can be a
    # reporter's number or address: it is logged by RQ and kept with the failed job.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Several writer processes (gateway, worker) share the file: WAL lets readers
            # go on while one writes, and the busy timeout makes writers wait their turn.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            if immediate:
                # Let SQLAlchemy, not the driver, begin transactions, so that they take the
                # write lock up front: a worker reads (open cases, incidents) and then
                # writes, and must not race another worker doing the same.
                dbapi_connection.isolation_level = None

        if immediate:
            database = engine.url.database
            turns = WriteTurns(database) if database and database != ":memory:" else None

            @event.listens_for(engine, "begin")
            def _sqlite_begin(connection: Any) -> None:
                if connection.get_execution_options().get(READ_ONLY):
                    connection.exec_driver_sql("BEGIN")  # a snapshot, and no lock taken
                    return
                if turns is not None:
                    turns.take(connection.connection.dbapi_connection)
                connection.exec_driver_sql("BEGIN IMMEDIATE")

            if turns is not None:
                # Back in the pool (its transaction committed or rolled back), or thrown
                # away: either way the turn goes on.
                @event.listens_for(engine, "checkin")
                @event.listens_for(engine, "invalidate")
                @event.listens_for(engine, "soft_invalidate")
                @event.listens_for(engine, "close")
                def _sqlite_turn_over(dbapi_connection: Any, *_: Any) -> None:
                    turns.give_back(dbapi_connection)

        return engine
    if url.startswith("postgresql+psycopg://"):
        # PostgreSQL's own placeholders ($1, $2 …), sent as they are (psycopg's RawCursor):
        # psycopg otherwise rewrites each statement's `%(name)s` placeholders itself, and
        # does not cache that for a statement of more than 50 parameters, such as the
        # store's multi-row INSERTs: a twelfth of a PostgreSQL worker's time.
        import psycopg

        kwargs.setdefault("paramstyle", "numeric_dollar")
        kwargs.setdefault("connect_args", {"cursor_factory": psycopg.RawCursor})
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, ping_after_idle)
    return engine


def _ping_when_idle(engine: Engine, after: float) -> None:
    """SQLAlchemy's `pool_pre_ping` asks the server before every checkout: a round trip
    before each of a worker's many short transactions (nine per batch of replies), a
    fiftieth of a PostgreSQL worker's time. Here only a connection idle for `after`
    seconds is asked. One whose server went away within that time fails its first
    statement instead; SQLAlchemy then throws away the pool's connections, and the job
    is retried, as when the server goes away mid-transaction."""

    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_from = record.info.get("idle_from")
        if idle_from is None or time.monotonic() - idle_from < after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise DisconnectionError() from exc  # the pool connects again
            raise


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("workers").joinpath("migrations"))
    )
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)
