"""Redis down at the gateway: complaints are spooled to disk, acknowledged, and drained later."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from config.settings import load_settings
from gateway.app import build_services, create_app
from gateway.embedded import EmbeddedRedis
from tests.conftest import ROOT, eventually, settings_env
from workers import models
from workers.db import make_engine, session_factory, upgrade


async def test_complaints_survive_a_redis_outage_at_the_gateway(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis_url = f"unix://{redis_dir / 'redis.sock'}"  # nothing listens there yet
    database_url = f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    env = settings_env(tmp_path, redis_url, database_url)
    settings = load_settings(env)
    engine = make_engine(database_url)
    upgrade(engine)
    texts = [f"Banjir setinggi lutut di Jl. Semeru gang {i}, got tersumbat" for i in range(3)]
    secret = {"name": "Dewi Lestari", "phone": "081377788899", "email": "dewi.l@example.org"}
    confidential = "Petugas parkir minta uang keamanan Rp50.000 tanpa karcis di Pasar Anyar"

    app = create_app(build_services(settings, redis_url))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answers = []
        for text in texts:
            response = await client.post("/api/v1/complaints", json={"text": text})
            answers.append((response.status, await response.json()))
        response = await client.post("/api/v1/complaints", json={"text": confidential, **secret})
        assert response.status == 202
        spooled = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*.json"))
        assert b"Pasar Anyar" not in spooled  # the whole confidential complaint is sealed
        for value in secret.values():
            assert value.encode() not in spooled
            assert value[1:].encode() not in spooled
        texts.append(confidential)
        assert [status for status, _ in answers] == [202, 202, 202]
        assert all(body["status"] == "queued" and body["reference"] for _, body in answers)
        spool_dir = tmp_path / "spool"
        assert len(list(spool_dir.glob("*.json"))) == 4

        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["spool_depth"] == 4
        metrics = await (await client.get("/metrics")).text()
        assert "aduan_spool_depth 4.0" in metrics
        assert 'aduan_intake_messages_total{channel="api",result="spooled"} 4.0' in metrics

        # Redis comes back: the gateway drains its spool into the queue by itself.
        redis = EmbeddedRedis(redis_dir, fsync="no").start()
        try:
            await eventually(lambda: not list(spool_dir.glob("*.json")), within=15)
            # A replay of something already queued changes nothing once stored.
            replayed = json.loads(json.dumps(answers[0][1]))
            assert replayed["reference"]
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.cli",
                "worker",
                "--burst",
                env={**os.environ, **env},
                cwd=ROOT,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, stderr = await asyncio.wait_for(worker.communicate(), 60)
            except TimeoutError:
                worker.kill()
                _, stderr = await worker.communicate()
                raise AssertionError(stderr.decode()[-3000:]) from None
            assert worker.returncode == 0, stderr.decode()
            with session_factory(engine)() as session:
                stored = session.scalars(select(models.Case.title)).all()
            assert sorted(stored) == sorted(texts)

            # The tracking reference now leads to the ticket.
            track = await client.get(f"/track/{answers[0][1]['reference']}", allow_redirects=False)
            assert track.status == 303
            assert "/track/BGR-" in track.headers["Location"]
        finally:
            redis.stop()
    engine.dispose()


def test_spooled_files_are_complete_or_absent(tmp_path: Path) -> None:
    from gateway.spool import Spool

    spool = Spool(tmp_path)
    complaint: dict[str, Any] = {"idempotency_key": "abc", "text": "x" * 10_000}
    path = spool.write(complaint)
    assert json.loads(path.read_text()) == complaint
    assert not list(tmp_path.glob(".*.part"))
    assert spool.depth() == 1
    spool.remove([path])
    assert spool.depth() == 0
