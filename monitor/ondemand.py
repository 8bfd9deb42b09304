"""``GET /probe``: one ladder now, for one server, answered with its metrics only.

The multi-target pattern of blackbox_exporter: Prometheus names the target
in the URL and gets a fresh set of series back, timed by its own scrape
timeout. Only configured servers can be probed, unless ``probe.allow`` opens
URL patterns: an open prober is a way into the monitor's network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math

from monitor.checks import LADDER
from monitor.config import MonitorConfig, server_url
from monitor.domain import Target
from monitor.metrics import Exposition
from monitor.model import ServerReport
from monitor.runner import Runner
from monitor.state import State

__all__ = ["OFFSET", "Busy", "OnDemand", "Refused"]

# Kept back from Prometheus' scrape timeout for the answer to reach it.
OFFSET = 0.5


class Refused(ValueError):
    """The request cannot be served; the message says why (a 400 for the client)."""


class Busy(Exception):
    """No probe slot freed up in time, or the monitor is stopping (a 503)."""


class OnDemand:
    """Probes a server on request, with the runner's settings and slots of its own.

    On-demand ladders have their own bound (``probe.concurrency``), so a
    client that hammers ``/probe`` cannot starve the schedule.
    """

    def __init__(self, runner: Runner, config: MonitorConfig) -> None:
        self.runner = runner
        self.location = config.location  # like /metrics: changes only on restart
        self._slots = asyncio.Semaphore(config.probe.concurrency)
        # One ladder per target at a time: requests that arrive while it runs
        # share its report (a burst of scrapes must not multiply the load).
        self._inflight: dict[tuple[object, ...], tuple[asyncio.Task[ServerReport], float]] = {}
        self._tasks: set[asyncio.Task[ServerReport]] = set()  # every ladder still running
        self._closed = False
        self.update(config)

    def update(self, config: MonitorConfig) -> None:
        """Adopt a reloaded config (its servers and ``probe.allow``)."""
        self.config = config
        targets = config.targets()
        self._targets = {t.name: t for t in targets}
        self._by_url: dict[str, Target] = {}
        for t in targets:
            self._by_url.setdefault(t.url, t)

    def target(self, name: str, checks: str | None) -> Target:
        """The target a request names, trimmed to its ``checks``; Refused if not allowed."""
        target = self._targets.get(name)
        if target is None:
            if "://" not in name:
                raise Refused(f"no server named {name[:80]!r} in the config")
            try:
                url = server_url(name)
            except ValueError as exc:
                raise Refused(f"target {name[:200]!r}: {exc}") from None
            target = self._by_url.get(url)
            if target is None:
                if not self.config.allowed_url(url):
                    raise Refused(
                        f"target {url[:200]!r} is not a configured server and matches no "
                        "pattern of probe.allow"
                    )
                target = self.config.url_target(url)
        return _trim(target, checks)

    def timeout(self, target: Target, scrape_timeout: str | None) -> float:
        """The ladder's time: the scrape timeout less OFFSET, at most the server's own."""
        if scrape_timeout is None:
            return target.timeout
        try:
            seconds = float(scrape_timeout)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            raise Refused(
                f"X-Prometheus-Scrape-Timeout-Seconds must be a positive number of seconds, "
                f"not {scrape_timeout[:40]!r}"
            )
        return min(target.timeout, max(seconds - OFFSET, seconds / 2))

    async def probe(self, target: Target, budget: float) -> ServerReport:
        """The report of a ladder run within ``budget`` seconds.

        A ladder already running for the same target is shared when it ends
        no later than this request must answer; otherwise this one runs its own.
        """
        if self._closed:
            raise Busy("the monitor is stopping")
        key = _key(target)
        deadline = asyncio.get_running_loop().time() + budget
        running = self._inflight.get(key)
        if running is not None and running[1] <= deadline:
            task = running[0]
        else:
            task = asyncio.ensure_future(self._run(target, budget))
            self._tasks.add(task)
            self._inflight[key] = (task, deadline)
            task.add_done_callback(lambda done: self._forget(key, done))
        # A client that goes away does not cancel the ladder others wait for.
        return await asyncio.shield(task)

    def _forget(self, key: tuple[object, ...], task: asyncio.Task[ServerReport]) -> None:
        self._tasks.discard(task)
        running = self._inflight.get(key)
        if running is not None and running[0] is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: a Busy nobody awaited is not an error

    async def close(self) -> None:
        """Refuse new probes; stop the running ones (each leaves its room, closes its stream)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, target: Target, budget: float) -> ServerReport:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await asyncio.wait_for(self._slots.acquire(), budget / 2)
        except TimeoutError:
            raise Busy("the monitor is busy: no free probe slot came in time") from None
        try:
            left = budget - (loop.time() - start)
            return await self.runner.run_now(dataclasses.replace(target, timeout=left))
        finally:
            self._slots.release()

    def render(self, target: Target, report: ServerReport, openmetrics: bool) -> bytes:
        """The probe's own series, from a state that holds only this report."""
        state = State(location=self.location)
        state.set_targets([target])
        exposition = Exposition(state)
        state.record(report)
        return exposition.render(openmetrics, monitor=False)


def _key(target: Target) -> tuple[object, ...]:
    """What makes two on-demand ladders the same (a Target itself is not hashable)."""
    key = target.token_key
    return (
        target.name,
        target.url,
        target.signalling,
        target.focus,
        target.join,
        key is not None,
        key is not None and key.matrix,
        target.groups,
    )


def _trim(target: Target, checks: str | None) -> Target:
    """The target with only the check groups ``checks=`` names, and those before
    them in the ladder, which later stages need (web always runs)."""
    if checks is None:
        return target
    groups = LADDER.groups
    wanted = {c.strip() for c in checks.split(",") if c.strip()}
    unknown = wanted - set(groups)
    if unknown:
        raise Refused(
            f"unknown check {sorted(unknown)[0][:40]!r} in checks=; use {', '.join(groups)}"
        )
    last = max(groups.index(group) for group in wanted | {groups[0]})
    return dataclasses.replace(target, groups=frozenset(groups[: last + 1]))
