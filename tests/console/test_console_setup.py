"""The console's schema, accounts from the command line, and SLA ageing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import inspect, update

from tests.conftest import ROOT, Stack, _pg_available, pg_schema, settings_env
from tests.console.test_console_http import LoggedIn, case_id, submit
from workers import models
from workers.cases import sla_due
from workers.db import make_engine, session_factory, upgrade

Client = TestClient[Any, Any]
CONSOLE_TABLES = {"operators", "audit_events", "case_links"}
JAKARTA = ZoneInfo("Asia/Jakarta")


def _up_down_up(url: str) -> None:
    from alembic import command

    from workers.db import alembic_config

    engine = make_engine(url)
    try:
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= CONSOLE_TABLES
        command.downgrade(alembic_config(engine), "0001")
        assert not CONSOLE_TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= CONSOLE_TABLES
    finally:
        engine.dispose()


def test_the_console_migration_goes_up_and_down_on_sqlite(tmp_path: Path) -> None:
    _up_down_up(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")


@pytest.mark.postgres
def test_the_console_migration_goes_up_and_down_on_postgresql() -> None:
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    with pg_schema("aduan_migration") as url:
        _up_down_up(url)


def _aduan(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_operator_accounts_from_the_command_line(tmp_path: Path, redis_url: str) -> None:
    env = settings_env(tmp_path, redis_url, f"sqlite:///{tmp_path / 'cases.sqlite3'}")
    added = _aduan(
        env,
        "operator",
        "add",
        "siti",
        "--role",
        "integrity",
        "--password-stdin",
        stdin="rahasia-sekali-123\n",
    )
    assert added.returncode == 0, added.stderr
    assert "'siti' added as integrity" in added.stdout
    again = _aduan(
        env,
        "operator",
        "add",
        "SITI",
        "--role",
        "operator",
        "--password-stdin",
        stdin="rahasia-sekali-123\n",
    )
    assert again.returncode == 1 and "already an operator" in again.stderr
    short = _aduan(
        env, "operator", "add", "budi", "--role", "operator", "--password-stdin", stdin="pendek\n"
    )
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    wrong_role = _aduan(env, "operator", "add", "budi", "--role", "root", "--password-stdin")
    assert wrong_role.returncode == 2
    assert _aduan(env, "operator", "disable", "siti").returncode == 0
    listed = _aduan(env, "operator", "list").stdout
    assert "siti" in listed and "integrity" in listed and "disabled" in listed
    assert "rahasia-sekali" not in listed
    engine = make_engine(env["DATABASE_URL"])
    with session_factory(engine)() as session:
        stored = session.query(models.Operator).one()
        assert stored.password_hash.startswith("$argon2id$")
    engine.dispose()


def test_three_working_days_skip_the_weekend() -> None:
    friday = datetime(2026, 12, 4, 10, 0, tzinfo=JAKARTA)
    assert sla_due(friday, 3, JAKARTA) == datetime(2026, 12, 9, 10, 0, tzinfo=JAKARTA)
    saturday = datetime(2026, 12, 5, 22, 0, tzinfo=JAKARTA)
    assert sla_due(saturday, 3, JAKARTA) == datetime(2026, 12, 9, 22, 0, tzinfo=JAKARTA)
    monday = datetime(2026, 12, 7, 8, 0, tzinfo=JAKARTA)
    assert sla_due(monday, 1, JAKARTA) == datetime(2026, 12, 8, 8, 0, tzinfo=JAKARTA)


async def test_a_case_not_verified_in_time_is_highlighted(
    client: Client, stack: Stack, logged_in: LoggedIn
) -> None:
    marker = secrets.token_hex(4)
    old = await submit(client, text=f"Saluran air mampet ({marker}) lama")
    fresh = await submit(client, text=f"Saluran air mampet ({marker}) baru")
    engine = make_engine(stack.settings.effective_database_url)
    with session_factory(engine)() as session, session.begin():
        session.execute(
            update(models.Case)
            .where(models.Case.id == case_id(stack, old))
            .values(created_at=datetime.now(UTC) - timedelta(days=8))
        )
    engine.dispose()
    await logged_in("operator")
    html = await (await client.get(f"/console/?q={marker}")).text()
    old_row = html[html.index(f'id="case-{case_id(stack, old)}"') :].split("</tr>")[0]
    fresh_row = html[html.index(f'id="case-{case_id(stack, fresh)}"') :].split("</tr>")[0]
    assert "overdue" in old_row and "lewat SLA" in old_row
    assert "overdue" not in fresh_row and "lewat SLA" not in fresh_row
    page = await (await client.get(f"/console/cases/{case_id(stack, old)}")).text()
    assert 'class="overdue"' in page
