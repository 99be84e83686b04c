"""The tests' fake Twilio REST API in a process of its own, noting when each reply arrives.

    python -m benchmarks.fake_twilio --auth-token TOKEN [--latency SECONDS]

It prints its URL, then serves; with `--latency` it answers each message only after that
long, as a real provider does (Twilio's API takes a few hundred milliseconds).

`GET /bench/arrivals` answers `[[to, monotonic seconds], …]`: when each message that
aduan sent (POST …/Messages.json, accepted) reached the fake, by its `To` number.
CLOCK_MONOTONIC is one clock for every process on a Linux machine, so these times compare
with the load generator's.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.server import Fault  # noqa: E402 - after the path
from tests.fakes.twilio_api import FakeTwilio  # noqa: E402


@dataclass
class TimedTwilio(FakeTwilio):
    arrivals: list[tuple[str, float]] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        super().routes(app)

        @web.middleware
        async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            if request.method == "POST" and request.path.endswith("/Messages.json"):
                arrived = time.monotonic()
                if response.status == 201:
                    form = await request.post()
                    self.arrivals.append((str(form.get("To", "")), arrived))
            return response

        async def arrivals(request: web.Request) -> web.Response:
            return web.json_response(self.arrivals)

        app.middlewares.append(timed)
        app.router.add_get("/bench/arrivals", arrivals)
        # Nothing reads the recorded requests here: keep memory flat over long runs.
        self.requests = _Discard()


class _Discard(list[Any]):
    def append(self, item: Any) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = parser.parse_args()
    fake = TimedTwilio(auth_token=args.auth_token).start()
    if args.latency > 0:
        fake.fail_always(Fault(delay=args.latency))  # a normal answer, that late
    print(fake.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
