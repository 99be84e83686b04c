"""How aduan's long-running processes run: the event loop, and the garbage collector."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency everywhere but Windows):
    the gateway is a loop of short requests, and uvloop's sockets, timers and callbacks
    cost less than asyncio's. None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on the loop of `loop_factory`."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


# The youngest generation of the garbage collector is collected after this many new
# objects (Python's default is 700). A request makes hundreds of short-lived objects,
# almost none of them in cycles: at 700 a collection ran every few requests.
GC_YOUNG_THRESHOLD = 10_000


def settle_memory() -> None:
    """Once the server is up: what startup made (modules, the app, the taxonomy) is moved
    where the collector no longer walks it (`gc.freeze`), and young objects are collected
    less often. A long-running server's usual tuning; cycles are still collected."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
