"""A local durable spool for when Redis is unreachable.

A complaint that cannot be queued is written here — one file per complaint, fsynced,
its directory fsynced — and acknowledged. A drainer moves spooled complaints into the
queue once Redis answers again; the store's unique idempotency key makes a replay that
overlaps an earlier enqueue harmless.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("aduan.spool")


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, complaint: dict[str, Any]) -> Path:
        name = f"{time.time_ns():020d}-{complaint['idempotency_key']}.json"
        final = self.directory / name
        partial = self.directory / f".{name}.part"
        data = json.dumps(complaint).encode()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(partial, final)
        self._sync_directory()
        return final

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self, limit: int | None = None) -> list[Path]:
        files = sorted(p for p in self.directory.glob("*.json"))
        return files if limit is None else files[:limit]

    def depth(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json"))

    def read(self, path: Path) -> dict[str, Any] | None:
        try:
            return dict(json.loads(path.read_bytes()))
        except (OSError, ValueError):
            log.error("spooled file %s cannot be read; moved aside", path.name)
            with contextlib.suppress(OSError):
                path.rename(path.with_suffix(".unreadable"))
            return None

    def remove(self, paths: list[Path]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._sync_directory()
