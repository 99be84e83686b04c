"""Engines for SQLite (embedded default) and PostgreSQL, and Alembic upgrades."""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# An execution option: a transaction that only reads, on an `immediate` SQLite engine,
# begins as SQLite's default (deferred) does and takes no write lock.
READ_ONLY = "aduan_read_only"


def make_engine(url: str, *, immediate: bool = False, **kwargs: Any) -> Engine:
    """`immediate`: SQLite transactions take the write lock when they begin, so workers
    that read before they write (bursts, incidents) are serialised, not racing. Except
    those begun with the READ_ONLY execution option."""
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

            @event.listens_for(engine, "begin")
            def _sqlite_begin(connection: Any) -> None:
                if connection.get_execution_options().get(READ_ONLY):
                    connection.exec_driver_sql("BEGIN")  # a snapshot, and no lock taken
                else:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


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
