"""The event loop: uvloop when it is installed (a dependency where it builds), else asyncio's.

uvloop's transports and its TLS layer are its own, written in Cython over
libuv; our HTTP client stays the same, so the gain is in the loop's own
work (see bench/RESULTS.md).
``JITSI_MONITOR_LOOP=asyncio`` keeps asyncio's loop even when uvloop is there.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when it is installed and not turned off, else None."""
    if os.environ.get("JITSI_MONITOR_LOOP", "").lower() == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Like ``asyncio.run``, on the loop ``loop_factory`` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
