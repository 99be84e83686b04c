"""A provider's API as a real HTTP server on loopback, in a thread of its own.

It runs on its own event loop so that it answers a worker process whatever the tests'
own loop is doing, and records every request it receives.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs

from aiohttp import web


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived
    connection: str = ""  # the client's address and port: one per TCP connection

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Fault:
    """How the provider misbehaves on one request: after `delay` seconds it answers
    `status` with the JSON `body` and `headers`, or (status None) answers normally."""

    status: int | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class FakeServer:
    """Subclasses add routes in `routes()`; `requests` holds what was received.

    Faults can be programmed for the routes that send messages: `fail_next` queues some
    for the next requests (to one recipient, or to anyone), `fail_always` answers every
    request with one until `recover()`.
    """

    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _faults: dict[str | None, list[Fault]] = field(default_factory=dict)
    _always: dict[str | None, Fault] = field(default_factory=dict)
    # Requests being answered now, and the most there were at once since `most_at_once`
    # was last set to 0.
    in_flight: int = 0
    most_at_once: int = 0

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def fail_next(self, *faults: Fault, to: str | None = None) -> None:
        """The next requests (for recipient `to`, or any) meet these faults, in order."""
        with self._lock:
            self._faults.setdefault(to, []).extend(faults)

    def fail_always(self, fault: Fault, to: str | None = None) -> None:
        with self._lock:
            self._always[to] = fault

    def recover(self, to: str | None = None) -> None:
        with self._lock:
            self._always.pop(to, None)
            self._faults.pop(to, None)

    def take_fault(self, to: str | None) -> Fault | None:
        """The fault this request meets, if any: one for its recipient before any other."""
        with self._lock:
            for key in (to, None):
                if key in self._always:
                    return self._always[key]
                pending = self._faults.get(key)
                if pending:
                    return pending.pop(0)
        return None

    async def faulty(self, request: web.Request, to: str | None) -> web.Response | None:
        """Apply the fault this request meets: its answer, or None to answer normally."""
        fault = self.take_fault(to)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is None:
            return None
        return web.json_response(fault.body, status=fault.status, headers=dict(fault.headers))

    @staticmethod
    def client_gone(request: web.Request) -> bool:
        """The client stopped waiting (timed out and closed the connection)."""
        return request.transport is None or request.transport.is_closing()

    def received(self, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and path_contains in r.path
            ]

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        connection = f"{peer[0]}:{peer[1]}" if peer else ""
        with self._lock:
            self.requests.append(
                Recorded(
                    request.method,
                    request.path_qs,
                    dict(request.headers),
                    body,
                    connection=connection,
                )
            )
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            response: web.StreamResponse = await handler(request)
        finally:
            with self._lock:
                self.in_flight -= 1
        return response

    def start(self) -> Self:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(middlewares=[self._record])
            self.routes(app)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = self._runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
