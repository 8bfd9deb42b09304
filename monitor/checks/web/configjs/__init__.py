"""Read a Jitsi ``config.js`` the way a browser does: by running it, in a sandbox.

config.js is JavaScript from a remote server. It runs in QuickJS (the
``quickjs-ng`` package), one fresh runtime per evaluation, with browser-like
globals and ``location`` set to the page URL (the server URL, tenant path
included), under a time limit and a memory limit. The monitor then reads
the resulting ``config`` object (see ``sandbox`` for the environment and
``facts`` for how its values are checked).

Evaluations run in a small pool of worker threads, off the event loop, and
stop before the ladder's deadline. Results are cached by the body's hash and
the page URL, so an unchanged config.js is evaluated once.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import json
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin

from monitor.checks.web.configjs import sandbox
from monitor.checks.web.configjs.facts import Verdict, verdict
from monitor.model import Reason

__all__ = [
    "MAX_SOURCE",
    "Limits",
    "Reader",
    "Verdict",
    "evaluate",
    "for_fleet",
    "reader",
]

MiB: Final = 1024 * 1024
# config.js files are tens of KiB; a bigger body is not evaluated at all.
MAX_SOURCE: Final = 1 * MiB
# The engine stops this long before the ladder's deadline, so the ladder
# reports the engine's reason rather than its own timeout.
MARGIN: Final = 0.02
# Below this much time there is no point starting the engine.
_MIN_RUN: Final = 0.005
# Worker threads: evaluations at once, hence also the engine memory at once.
WORKERS: Final = 2
# Navigator.userAgent: a desktop browser's, so files that branch on it take
# the desktop branch, with our name appended.
AGENT: Final = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36 jitsi-monitor"
)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one evaluation may use: wall time (seconds) and engine memory (bytes)."""

    time: float = 0.25
    memory: int = 64 * MiB


@dataclass(slots=True)
class Stats:
    """Counters since the reader was made (for the benchmark and tests)."""

    hits: int = 0
    misses: int = 0
    evaluations: int = 0
    engine_seconds: float = 0.0


def _libc_trim() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC: Final = _libc_trim()
# After a run whose engine heap grew past this, give freed memory back to
# the system (glibc keeps a worker thread's arena otherwise).
_TRIM_ABOVE: Final = 8 * MiB

_Key = tuple[bytes, str, str]


class Reader:
    """Evaluates config.js bodies in worker threads, with a bounded cache."""

    def __init__(self, limits: Limits | None = None, cache_size: int = 1024) -> None:
        self.limits = limits or Limits()
        self.cache_size = cache_size
        self.stats = Stats()
        self._cache: OrderedDict[_Key, Verdict] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._running = 0

    @property
    def running(self) -> int:
        """Engine runs in progress right now."""
        with self._lock:
            return self._running

    def cached(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        """Let its worker threads go (runs in progress stop at their own limits)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="configjs")
        return self._pool

    def _job(
        self, source: str, env: str, wall_deadline: float | None
    ) -> tuple[Verdict, bool] | None:
        """In a worker: run the engine until the limit or the deadline, whichever is first."""
        limit = self.limits.time
        if wall_deadline is not None:
            limit = min(limit, wall_deadline - time.monotonic())
        if limit < _MIN_RUN:
            return None
        with self._lock:
            self._running += 1
        try:
            result = sandbox.run(source, env, limit, self.limits.memory, wall_deadline)
        finally:
            with self._lock:
                self._running -= 1
        if result.heap > _TRIM_ABOVE and _LIBC is not None:
            _LIBC.malloc_trim(0)
        with self._lock:
            self.stats.evaluations += 1
            self.stats.engine_seconds += result.seconds
        page = _page_of(env)
        found = verdict(result, page, limit, self.limits.memory)
        cut_short = limit < self.limits.time
        if found.reason is Reason.CONFIGJS_TIMEOUT and cut_short:
            found = Verdict(
                None,
                Reason.CONFIGJS_TIMEOUT,
                f"config.js was still running at the ladder's deadline ({limit * 1000:.0f} ms "
                "were left); stopped",
            )
        # A run the deadline cut short says nothing about the file itself.
        return found, not (cut_short and found.reason is Reason.CONFIGJS_TIMEOUT)

    def _remember(self, key: _Key, found: Verdict) -> None:
        self._cache[key] = found
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _lookup(self, key: _Key) -> Verdict | None:
        found = self._cache.get(key)
        if found is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        self._cache.move_to_end(key)
        return found

    async def read(self, body: bytes, page_url: str, script_url: str, deadline: float) -> Verdict:
        """The verdict on ``body`` served for ``page_url``, by the loop time ``deadline``."""
        key = (hashlib.blake2b(body, digest_size=16).digest(), page_url, script_url)
        found = self._lookup(key)
        if found is not None:
            return found
        if len(body) > MAX_SOURCE:
            found = _too_large(len(body))
            self._remember(key, found)
            return found
        loop = asyncio.get_running_loop()
        left = deadline - loop.time() - MARGIN
        if left < _MIN_RUN:
            return _no_time()
        source = body.decode("utf-8-sig", "replace")
        env = sandbox.page_env(page_url, script_url, AGENT)
        job = self._executor().submit(self._job, source, env, time.monotonic() + left)
        try:
            # The engine stops itself by then; this bound only covers a starved machine.
            outcome = await asyncio.wait_for(asyncio.wrap_future(job), left + MARGIN / 2)
        except TimeoutError:
            return Verdict(
                None,
                Reason.CONFIGJS_TIMEOUT,
                "config.js was still being evaluated at the ladder's deadline",
            )
        if outcome is None:
            return _no_time()
        found, keep = outcome
        if keep:
            self._remember(key, found)
        return found

    def evaluate(self, body: bytes | str, page_url: str, script_url: str | None = None) -> Verdict:
        """Evaluate in the calling thread, without the cache (tests, the benchmark)."""
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        if len(body) > MAX_SOURCE:
            return _too_large(len(body))
        env = sandbox.page_env(page_url, script_url or urljoin(page_url, "config.js"), AGENT)
        outcome = self._job(body.decode("utf-8-sig", "replace"), env, None)
        assert outcome is not None
        return outcome[0]


def _page_of(env: str) -> str:
    href = json.loads(env).get("href")
    return href if isinstance(href, str) else ""


def _too_large(size: int) -> Verdict:
    return Verdict(
        None,
        Reason.CONFIGJS_ERROR,
        f"config.js is {size} bytes; the monitor evaluates at most {MAX_SOURCE // MiB} MiB",
    )


def _no_time() -> Verdict:
    return Verdict(
        None,
        Reason.CONFIGJS_TIMEOUT,
        "no time was left before the ladder's deadline to evaluate config.js",
    )


_reader = Reader()


def reader() -> Reader:
    """The default reader, with the default limits, for tools and benchmarks that
    probe without a runner (a ``Runner`` holds its own, with the config's limits)."""
    return _reader


def for_fleet(limits: Limits, servers: int) -> Reader:
    """A reader with the ``configjs`` settings, whose cache holds at least one
    entry per server."""
    return Reader(limits, max(1024, servers))


def evaluate(
    body: bytes | str, page_url: str = "https://meet.example.org/", limits: Limits | None = None
) -> Verdict:
    """Evaluate one body synchronously with fresh limits (tests, the benchmark)."""
    return Reader(limits or _reader.limits).evaluate(body, page_url)
