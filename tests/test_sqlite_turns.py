"""Workers take turns at an SQLite database's write lock behind a file lock.

A turn must always go on: a worker whose transaction fails, or whose connection is
thrown away, would otherwise leave every other worker waiting for ever. The file lock
is probed the way another worker would meet it (`flock` without waiting); two engines
in one process hold separate descriptors, so they meet it as two processes do.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from workers.db import READ_ONLY, make_engine


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "cases.sqlite3"
    engine = make_engine(f"sqlite:///{path}", immediate=True)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body TEXT)"))
    engine.dispose()
    yield path


def turn_is_free(database: Path) -> bool:
    """Whether another worker could take the turn now."""
    fd = os.open(f"{database}-write-turn", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing lets go of a lock it took
    return True


def worker_engine(database: Path) -> Engine:
    return make_engine(f"sqlite:///{database}", immediate=True)


def test_a_write_transaction_holds_the_turn_until_it_commits(database: Path) -> None:
    engine = worker_engine(database)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO notes VALUES ('jalan berlubang')"))
            assert not turn_is_free(database)
        assert turn_is_free(database)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM notes")).scalar() == 1
    finally:
        engine.dispose()


def test_a_transaction_that_fails_gives_the_turn_on(database: Path) -> None:
    engine = worker_engine(database)
    try:
        with pytest.raises(RuntimeError), engine.begin() as connection:
            connection.execute(text("INSERT INTO notes VALUES ('rolled back')"))
            raise RuntimeError("the batch failed")
        assert turn_is_free(database)
        with engine.begin() as connection:  # and this worker takes it again
            connection.execute(text("INSERT INTO notes VALUES ('stored')"))
            assert not turn_is_free(database)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT body FROM notes")).scalars().all()
        assert rows == ["stored"]
    finally:
        engine.dispose()


def test_a_connection_thrown_away_mid_transaction_gives_the_turn_on(database: Path) -> None:
    engine = worker_engine(database)
    try:
        connection = engine.connect()
        connection.execute(text("INSERT INTO notes VALUES ('lost')"))
        assert not turn_is_free(database)
        connection.invalidate()
        connection.close()
        assert turn_is_free(database)
    finally:
        engine.dispose()


def test_reading_takes_no_turn(database: Path) -> None:
    engine = worker_engine(database)
    try:
        with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
            connection.execute(text("SELECT count(*) FROM notes")).scalar()
            assert turn_is_free(database)
    finally:
        engine.dispose()


def test_a_writer_without_turns_still_writes_while_workers_take_theirs(
    database: Path,
) -> None:
    """The gateway's console writes without a turn: SQLite's own lock still orders it."""
    first, second = worker_engine(database), worker_engine(database)
    console = sqlite3.connect(database, timeout=30)
    try:
        with first.begin() as connection:
            connection.execute(text("INSERT INTO notes VALUES ('worker 1')"))
        with console:
            console.execute("INSERT INTO notes VALUES ('operator')")
        with second.begin() as connection:
            connection.execute(text("INSERT INTO notes VALUES ('worker 2')"))
        count = console.execute("SELECT count(*) FROM notes").fetchone()
        assert count == (3,)
        assert turn_is_free(database)
    finally:
        console.close()
        first.dispose()
        second.dispose()
