"""Run every server's ladder on its interval (APScheduler, kept behind this module).

- Each server is one interval job with jitter, so probes spread out instead
  of striking every server in the same second.
- At most one ladder per server at a time (``max_instances=1``); runs missed
  while the loop was busy are coalesced into one.
- A global bound on concurrent ladders comes from the Runner's slots.
- Every server gets a first probe soon after start (a one-off job), then
  runs at a stable phase inside its interval derived from its name, which
  spreads a large fleet evenly over the interval.
- The first probes are spread over a window that grows with the number of
  servers started together (``first_round_window``): a large fleet's first
  round is not one burst that saturates the process, delays every ladder
  and skews the first timings. Each server's place in the window comes from
  its name, so a restart probes in the same order. A reload spreads the
  servers it adds the same way.
- Objects that live as long as the config (targets, jobs, the config
  itself) are moved out of the garbage collector's sight (``gc.freeze``)
  after start-up and after an update that adds servers, and so are the
  survivors of each full collection (``monitor.gc_freeze``), so a full pass
  walks only what changed since, which keeps its pauses short in a large
  fleet.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import zlib
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor import escape
from monitor.decisions import Decisions
from monitor.domain import Target
from monitor.gc_freeze import QuietGc
from monitor.model import ServerReport
from monitor.runner import Runner
from monitor.state import State

__all__ = ["FIRST_ROUND_PER_SERVER", "STARTUP_SPREAD", "Scheduler", "first_round_window"]

log = logging.getLogger(__name__)

# The first probes after start are spread over this many seconds at most.
STARTUP_SPREAD = 5.0
# ... unless the fleet is larger: then over this much time per server started
# together (25 first ladders a second), at most the server's interval.
FIRST_ROUND_PER_SERVER = 0.04
# How long shutdown waits for cancelled ladders to leave their rooms.
SHUTDOWN_WAIT = 5.0
# Suffix of the one-off job that runs a new server's first probe.
_FIRST = "/first"


def _fraction(name: str) -> float:
    """A stable number in [0, 1) for a server name."""
    return zlib.crc32(name.encode()) / 2**32


def first_round_window(count: int, interval: float, floor: float = STARTUP_SPREAD) -> float:
    """The window over which ``count`` servers started together get their first probes.

    ``floor`` (``STARTUP_SPREAD``) for a small fleet, ``count * FIRST_ROUND_PER_SERVER``
    for a large one, never more than the server's ``interval`` (then the
    first probe comes at the server's own place in its interval).
    """
    return min(interval, max(floor, count * FIRST_ROUND_PER_SERVER))


def _jitter(interval: float) -> float:
    return min(interval * 0.05, 5.0)


def _log_change(name: str, previous: ServerReport | None, report: ServerReport) -> None:
    """Log verdict changes (and the first verdict); steady state stays quiet."""
    failure = report.first_failure
    if previous is not None and previous.up == report.up:
        log.debug("server %s: %s in %.3fs", name, "up" if report.up else "down", report.duration)
    elif failure is None:
        log.info("server %s is up", name)
    else:
        log.warning(
            "server %s is down: %s: %s: %s",
            name,
            failure.check.value,
            failure.reason.value,
            escape.plain(failure.detail),
        )


class Scheduler:
    """Keeps one job per target and feeds finished reports into State."""

    def __init__(self, runner: Runner, state: State, decisions: Decisions | None = None) -> None:
        self._runner = runner
        self._state = state
        self._decisions = decisions or Decisions(state)
        self._targets: dict[str, Target] = {}
        self._due: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._gc = QuietGc()
        self._aps = AsyncIOScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None})
        self._aps.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)

    def start(self, targets: list[Target]) -> None:
        """Schedule ``targets`` and start; call from inside the running loop."""
        self._aps.start()
        # Start-up's garbage goes now, before anything is probed and while it is cheap.
        gc.collect()
        self.update(targets)
        self._gc.install()

    def update(self, targets: list[Target], *, takeover: float | None = None) -> None:
        """Adopt a new target list: add, reschedule and remove jobs to match.

        ``takeover`` (HA scale-out: servers another instance probed until now):
        the servers added get their first probes within ``first_round_window``
        with ``takeover`` seconds as its floor, and go on an interval after it,
        so that none misses more than an interval across the handover."""
        new = {t.name: t for t in targets}
        for name in list(self._targets):
            if name not in new:
                self._remove_jobs(name)
                del self._targets[name]
        now = datetime.now(UTC)
        added = sum(name not in self._targets for name in new)
        for name, target in new.items():
            old = self._targets.get(name)
            self._targets[name] = target
            if old is not None and old.interval == target.interval:
                continue  # other settings are read at each run
            offset = _fraction(name)
            floor = STARTUP_SPREAD if takeover is None else takeover
            window = first_round_window(added, target.interval, floor)
            first = now + timedelta(seconds=offset * window)
            if old is None:
                self._aps.add_job(
                    self._job, "date", run_date=first, args=[name], id=f"{name}{_FIRST}"
                )
            else:
                self._aps.remove_job(name)
            start = now + timedelta(seconds=offset * target.interval)
            if old is None and takeover is not None:
                start = first + timedelta(seconds=target.interval)  # a handover: no gap
            elif old is None and (start - first).total_seconds() < target.interval / 2:
                start += timedelta(seconds=target.interval)  # too close to the first run
            trigger = IntervalTrigger(
                seconds=target.interval,
                start_date=start,
                jitter=_jitter(target.interval),
                timezone=UTC,
            )
            self._aps.add_job(
                self._job,
                trigger=trigger,
                args=[name],
                id=name,
                max_instances=1,
                coalesce=True,
            )
        if added:
            # What was just built lives until the next update: out of the GC's
            # sight. No collection first (it would walk the whole new config on
            # the loop); cyclic garbage frozen with it is freed at the next thaw
            # (monitor.gc_freeze).
            gc.freeze()

    def _remove_jobs(self, name: str) -> None:
        for job_id in (name, f"{name}{_FIRST}"):
            if self._aps.get_job(job_id) is not None:
                self._aps.remove_job(job_id)

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        if event.scheduled_run_times:
            name = event.job_id.removesuffix(_FIRST)
            self._due[name] = max(event.scheduled_run_times).timestamp()

    async def _job(self, name: str) -> None:
        target = self._targets.get(name)
        due = self._due.pop(name, None)
        if target is None or name in self._running:
            return  # removed meanwhile, or its ladder is still running
        self._gc.settle()
        task = asyncio.current_task()
        self._running.add(name)
        if task is not None:
            self._tasks.add(task)
        try:
            async with self._runner.slot():
                if due is not None:
                    self._state.schedule_lag = max(0.0, time.time() - due)
                target = self._targets.get(name, target)
                report = await self._runner.run_now(target)
            previous = self._state.reports.get(name)
            decisions = self._state.record(report)
            _log_change(name, previous, report)
            self._decisions.take(decisions)
        except asyncio.CancelledError:
            # Shutdown cancels ladders in flight. This coroutine is the whole
            # task, so ending it quietly is safe, and keeps APScheduler (which
            # catches BaseException) from logging each one as a crash.
            return
        finally:
            self._running.discard(name)
            if task is not None:
                self._tasks.discard(task)

    async def shutdown(self) -> None:
        """Stop scheduling and cancel ladders in flight (they close their connections)."""
        self._gc.uninstall()
        gc.unfreeze()  # what start-up and reloads froze is the collector's again
        if self._aps.running:
            self._aps.shutdown(wait=False)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # Ladders leave their rooms as they go; do not wait on them forever.
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT)
