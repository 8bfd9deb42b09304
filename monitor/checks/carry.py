"""The last token matrix of each server, carried between its runs.

The refusal cases and the moderator pair of the token matrix run at most
every ``jwt.matrix_interval``; the rounds in between carry their last
verdicts, with their age, so that reports, metrics and alerts keep showing
them. ``MatrixMemory`` keeps those verdicts, one entry per server.

It belongs to the ``Runner``, not to ``State``: the runner is what both the
schedule and ``/probe`` run ladders with, so one memory serves both (a
``/probe`` scrape does not run again the matrix the schedule has just run,
nor the other way round), while ``State`` is what the schedule's results
are written to and others only read. A one-shot ``check`` has a fresh runner,
so it always runs the whole matrix.

A verdict lives neither for nothing nor forever: it is forgotten when the
server's settings that shaped it (its URL, TLS, signalling and token
settings) or the facts its config.js gave change, since it was found under
other conditions; and it is no longer carried once it is older than twice
the interval (the matrix could not run since, e.g. the valid token failed):
the checks then say they were not run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable
from dataclasses import dataclass

from monitor.config import Target
from monitor.ladder import JwtCase
from monitor.model import CheckResult, ConfigFacts

__all__ = ["Carried", "MatrixMemory", "carry"]


@dataclass(frozen=True, slots=True)
class Carried:
    """One run of the matrix: when, its checks (jwt_enforced, moderation) and cases."""

    at: float  # Unix time
    checks: tuple[CheckResult, ...]
    cases: tuple[tuple[JwtCase, bool], ...]


@dataclass(frozen=True, slots=True)
class _Entry:
    shaped_by: Hashable
    carried: Carried
    until: float  # Unix time after which it is no longer carried


def _shaped_by(target: Target, facts: ConfigFacts | None) -> Hashable:
    """What a matrix verdict depends on: not the schedule, the timeout or the labels."""
    return (
        target.url,
        target.tls_verify,
        target.ca_file,
        target.signalling,
        target.focus,
        target.join,
        target.token_key,
        facts,
    )


def _lifetime(target: Target) -> float:
    key = target.token_key
    interval = key.matrix_interval if key is not None else 0.0
    return 2 * max(interval, target.interval)


class MatrixMemory:
    """The last matrix of each server, as long as it may be carried."""

    def __init__(self) -> None:
        self._kept: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def last(
        self, target: Target, facts: ConfigFacts | None, now: float | None = None
    ) -> Carried | None:
        """The verdicts to carry into this round, or None (forgotten, or none yet)."""
        entry = self._kept.get(target.name)
        if entry is None:
            return None
        now = time.time() if now is None else now
        if entry.shaped_by != _shaped_by(target, facts) or now > entry.until:
            del self._kept[target.name]
            return None
        return entry.carried

    def due(self, target: Target, facts: ConfigFacts | None, now: float | None = None) -> bool:
        """Whether this round runs the matrix: nothing to carry, or the interval has passed.

        Half a probe interval of slack, so that the scheduler's jitter does not
        push a run one round later.
        """
        key = target.token_key
        if key is None or not key.matrix:
            return False
        now = time.time() if now is None else now
        carried = self.last(target, facts, now)
        return carried is None or now - carried.at >= key.matrix_interval - target.interval / 2

    def keep(self, target: Target, facts: ConfigFacts | None, carried: Carried) -> None:
        """Remember a matrix that ran; drop what no server can carry any more."""
        for name in [n for n, e in self._kept.items() if carried.at > e.until]:
            del self._kept[name]
        self._kept[target.name] = _Entry(
            _shaped_by(target, facts), carried, carried.at + _lifetime(target)
        )


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def carry(
    carried: Carried,
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
