"""Carried verdicts: the last run of a family's slow checks, kept between rounds.

Some checks run less often than the ladder: the token matrix's refusal cases
and moderator pair (every ``jwt.matrix_interval``), STUN and TURN (every
``media.interval``). The rounds in between carry their last verdicts, their
details saying how old they are, so that reports, metrics and alerts keep
showing them. One mechanism serves every such family: a ``Memory`` per
family, with that family's ``Policy`` (what shapes a verdict, how often the
checks run, how long a verdict may be carried).

A memory belongs to the ``Runner``, not to ``State``: the runner is what both
the schedule and ``/probe`` run ladders with, so one memory serves both (a
``/probe`` scrape does not run again what the schedule has just run, nor the
other way round), while ``State`` is what the schedule's results are written
to and others only read. A one-shot ``check`` has a fresh runner, so it
always runs everything.

A verdict lives neither for nothing nor forever: it is forgotten when the
server's settings that shaped it or the facts its config.js gave change,
since it was found under other conditions; and it is no longer carried once
it is older than twice the interval (the checks could not run since, e.g.
the login failed): the checks then say they were not run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from monitor.domain import Target
from monitor.model import CheckResult, ConfigFacts

__all__ = ["Carried", "Memory", "Policy", "carry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Carried(Generic[T]):
    """One run of a family's slow checks: when, their results, what else it found."""

    at: float  # Unix time
    checks: tuple[CheckResult, ...]
    found: T


@dataclass(frozen=True, slots=True)
class Policy:
    """How a family carries its verdicts."""

    # What a verdict depends on (not the schedule, the timeout or the labels).
    shaped_by: Callable[[Target, ConfigFacts | None], Hashable]
    # How often the checks run for ``target`` (None: they do not run for it).
    interval: Callable[[Target], float | None]
    # What the checks are, for the carried details ("media is probed").
    runs: str = "these cases run"


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    shaped_by: Hashable
    carried: Carried[T]
    until: float  # Unix time after which it is no longer carried


class Memory(Generic[T]):
    """The last run of one family's slow checks for each server, as long as it may be carried."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._kept: dict[str, _Entry[T]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def last(
        self, target: Target, facts: ConfigFacts | None, now: float | None = None
    ) -> Carried[T] | None:
        """The run to carry into this round, or None (forgotten, or none yet)."""
        entry = self._kept.get(target.name)
        if entry is None:
            return None
        now = time.time() if now is None else now
        if entry.shaped_by != self.policy.shaped_by(target, facts) or now > entry.until:
            del self._kept[target.name]
            return None
        return entry.carried

    def due(self, target: Target, facts: ConfigFacts | None, now: float | None = None) -> bool:
        """Whether this round runs the checks: nothing to carry, or the interval has passed.

        Half a probe interval of slack, so that the scheduler's jitter does not
        push a run one round later.
        """
        interval = self.policy.interval(target)
        if interval is None:
            return False
        now = time.time() if now is None else now
        carried = self.last(target, facts, now)
        return carried is None or now - carried.at >= interval - target.interval / 2

    def keep(self, target: Target, facts: ConfigFacts | None, carried: Carried[T]) -> None:
        """Remember a run; drop what no server can carry any more."""
        for name in [n for n, e in self._kept.items() if carried.at > e.until]:
            del self._kept[name]
        interval = self.policy.interval(target) or 0.0
        until = carried.at + 2 * max(interval, target.interval)
        self._kept[target.name] = _Entry(self.policy.shaped_by(target, facts), carried, until)

    def carry(
        self, target: Target, carried: Carried[T], now: float | None = None
    ) -> tuple[CheckResult, ...]:
        """The checks of ``carried``, their details saying how old they are."""
        return carry(carried, self.policy.interval(target) or 0.0, now, runs=self.policy.runs)


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def carry(
    carried: Carried[T],
    interval: float,
    now: float | None = None,
    *,
    runs: str = "these cases run",
) -> tuple[CheckResult, ...]:
    """The checks of an earlier run, their details saying how old they are and how
    often ``runs`` (what the checks are, e.g. "media is probed")."""
    age = max(0.0, (time.time() if now is None else now) - carried.at)
    note = f"as of {_span(age)} ago; {runs} every {_span(interval)}"
    return tuple(
        dataclasses.replace(c, detail=f"{c.detail} ({note})" if c.detail else note, phases=())
        for c in carried.checks
    )
