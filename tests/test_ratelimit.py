"""Rate limits hold across gateway processes, because they live in Redis."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.settings import SettingsError, load_settings
from gateway.app import build_services, create_app
from tests.conftest import Stack, settings_env


def gateway(stack: Stack, tmp_path: Path, limits: str) -> TestClient[Any, Any]:
    env = settings_env(
        tmp_path,
        stack.env["REDIS_URL"],
        stack.env["DATABASE_URL"],
        ADUAN_RATE_LIMITS=limits,
        ADUAN_QUEUE=stack.env["ADUAN_QUEUE"],
    )
    app = create_app(build_services(load_settings(env), env["REDIS_URL"]))
    return TestClient(TestServer(app, host="127.0.0.1"))


async def test_a_sender_over_the_limit_gets_429_on_any_gateway(
    stack: Stack, tmp_path: Path
) -> None:
    phone = f"0812{secrets.randbelow(10**8):08d}"
    async with (
        gateway(stack, tmp_path, "ip=0/60,api=3/60") as first,
        gateway(stack, tmp_path, "ip=0/60,api=3/60") as second,
    ):
        statuses = []
        for client in (first, second, first, second):
            response = await client.post(
                "/api/v1/complaints", json={"text": "Jalan rusak di gang Kenari", "phone": phone}
            )
            statuses.append(response.status)
        assert statuses == [201, 201, 201, 429]
        body = await response.json()
        assert body["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        other = await second.post(
            "/api/v1/complaints",
            json={"text": "Jalan rusak di gang Kenari", "phone": "081311112222"},
        )
        assert other.status == 201


async def test_an_address_over_the_limit_gets_429(stack: Stack, tmp_path: Path) -> None:
    limits = f"ip=2/60,api=0/60,unused{secrets.token_hex(2)}=1/60"
    async with gateway(stack, tmp_path, limits) as client:
        statuses = [
            (await client.post("/api/v1/complaints", json={"text": "Sampah di sungai"})).status
            for _ in range(3)
        ]
    assert statuses[-1] == 429


async def test_a_provider_retry_is_not_counted_against_the_sender(
    stack: Stack, tmp_path: Path
) -> None:
    phone = f"0813{secrets.randbelow(10**8):08d}"
    key = secrets.token_hex(8)
    async with gateway(stack, tmp_path, "ip=0/60,api=2/60") as client:
        statuses = [
            (
                await client.post(
                    "/api/v1/complaints",
                    json={"text": "Lampu jalan mati", "phone": phone},
                    headers={"Idempotency-Key": key},
                )
            ).status
            for _ in range(4)
        ]
    assert statuses == [201, 201, 201, 201]


def test_a_malformed_limit_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ADUAN_RATE_LIMITS"):
        load_settings({"ADUAN_DATA_DIR": str(tmp_path), "ADUAN_RATE_LIMITS": "sms=lots"})
