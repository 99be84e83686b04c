"""A pooled PostgreSQL connection whose server end went away while it sat idle is
replaced before it is used: the caller never sees the dead one."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from tests.conftest import PG_DSN, _pg_available
from workers.db import make_engine


@pytest.mark.postgres
def test_a_connection_whose_server_end_died_while_idle_is_replaced_unnoticed() -> None:
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    engine = make_engine(PG_DSN, ping_after_idle=0.05)
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # The server ends that session (as a restart would) while the pool holds it.
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        time.sleep(0.1)  # idle for longer than `ping_after_idle`
        with engine.connect() as connection:
            again = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert again != first
    finally:
        engine.dispose()
