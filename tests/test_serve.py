"""`aduan serve` and `aduan worker` as an operator runs them: real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, _pg_available, free_port, stop_process

ADUAN = [sys.executable, "-m", "gateway.cli"]


def request(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - loopback URLs the test builds
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"aduan exited early:\n{log.read_text()}")
        try:
            if request(f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"aduan did not come up:\n{log.read_text()}")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [*ADUAN, *args], env={**os.environ, **env}, cwd=ROOT, stdout=handle, stderr=handle
        )


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADUAN_")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(values)
    return env


def test_serve_runs_everything_from_one_command_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    data = tmp_path / "var"
    env = clean_env(
        ADUAN_DATA_DIR=str(data), ADUAN_HTTP_PORT=str(port), ADUAN_SMTP_PORT=str(free_port())
    )
    log = tmp_path / "serve.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [*ADUAN, "serve"], env=env, cwd=ROOT, stdout=handle, stderr=handle
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, log)
        status, body = request(
            f"{base}/api/v1/complaints",
            {"text": "Drainase tersumbat di Jl. Ahmad Yani, banjir tiap hujan"},
        )
        assert status == 201, body
        assert request(f"{base}/api/v1/complaints/{body['ticket']}")[1]["topic"] == "drainase"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        stop_process(process)
    output = log.read_text()
    assert "aduan is running." in output and f"http://127.0.0.1:{port}/" in output
    assert (data / "aduan.sqlite3").exists()
    assert (data / "appendonly.aof").exists() or (data / "appendonlydir").exists()
    assert not (data / "redis.sock").exists(), "the embedded Redis was shut down"
    leftovers = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "no child process outlives `aduan serve`"

    # What was acknowledged survives a restart.
    port = free_port()
    env["ADUAN_HTTP_PORT"] = str(port)
    env["ADUAN_SMTP_PORT"] = str(free_port())
    with log.open("ab") as handle:
        again = subprocess.Popen([*ADUAN, "serve"], env=env, cwd=ROOT, stdout=handle, stderr=handle)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", again, log)
        status, found = request(f"http://127.0.0.1:{port}/api/v1/complaints/{body['ticket']}")
        assert status == 200 and found["ticket"] == body["ticket"]
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(30)


def test_an_invalid_setting_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    env = clean_env(ADUAN_DATA_DIR=str(tmp_path), ADUAN_HTTP_PORT="eighty")
    result = subprocess.run(
        [*ADUAN, "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "ADUAN_HTTP_PORT" in result.stderr


@pytest.mark.postgres
def test_gateways_and_workers_run_apart_on_redis_and_postgresql(
    tmp_path: Path, redis_url: str
) -> None:
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    from tests.conftest import PG_DSN

    schema = f"aduan_scale_{os.getpid()}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    database_url = f"{PG_DSN}?options=-csearch_path%3D{schema}"
    common = clean_env(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        ADUAN_QUEUE=f"scale-{os.getpid()}",
        ADUAN_SECRET_KEY="scale-out-secret-key-0123456789",
        ADUAN_ENCRYPTION_KEY="a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=",
        ADUAN_DATA_DIR=str(tmp_path),
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upgrade = subprocess.run(
            [*ADUAN, "db", "upgrade"],
            env=common,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert upgrade.returncode == 0, upgrade.stderr
        ports = [free_port(), free_port()]
        for port in ports:
            processes.append(
                spawn(
                    ["serve", "--no-worker"],
                    {**common, "ADUAN_HTTP_PORT": str(port), "ADUAN_SMTP_PORT": str(free_port())},
                    tmp_path / "gw.log",
                )
            )
        for port, process in zip(ports, processes, strict=True):
            wait_until_up(f"http://127.0.0.1:{port}", process, tmp_path / "gw.log")
        processes.append(spawn(["worker"], common, tmp_path / "worker.log"))
        tickets = set()
        for i, port in enumerate(ports * 3):
            status, body = request(
                f"http://127.0.0.1:{port}/api/v1/complaints",
                {"text": f"Sampah menumpuk di pasar blok {i}"},
            )
            assert status == 201, body
            tickets.add(body["ticket"])
        assert len(tickets) == 6
        # Any gateway answers for a case another gateway took in.
        status, found = request(f"http://127.0.0.1:{ports[1]}/api/v1/complaints/{min(tickets)}")
        assert status == 200 and found["ticket"] == min(tickets)
        assert "Worker           not started (--no-worker)" in (tmp_path / "gw.log").read_text()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            stop_process(process)
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
