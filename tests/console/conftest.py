"""Console fixtures: operator accounts, logged-in clients, a way to read the page's CSRF token."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.auth import create_operator
from tests.conftest import Stack
from workers.db import make_engine, session_factory

Client = TestClient[Any, Any]
PASSWORD = "kata-sandi-yang-panjang"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def add_operator(stack: Stack, role: str, password: str = PASSWORD) -> str:
    username = f"{role}-{secrets.token_hex(3)}"
    engine = make_engine(stack.settings.effective_database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            create_operator(session, username, role, password)
    finally:
        engine.dispose()
    return username


async def login(client: Client, username: str, password: str = PASSWORD) -> Any:
    page = await client.get("/console/login")
    assert page.status == 200
    return await client.post(
        "/console/login",
        data={"csrf": csrf_of(await page.text()), "username": username, "password": password},
        allow_redirects=False,
    )


@pytest.fixture
def operator_factory(stack: Stack) -> Callable[[str], str]:
    return lambda role: add_operator(stack, role)


@pytest.fixture
def logged_in(client: Client, stack: Stack) -> Callable[[str], Awaitable[str]]:
    """Log the test client in as a new operator of a role; returns the username."""

    async def as_role(role: str) -> str:
        client.session.cookie_jar.clear()
        username = add_operator(stack, role)
        response = await login(client, username)
        assert response.status == 303, await response.text()
        return username

    return as_role
