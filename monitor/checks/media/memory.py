"""The last media verdicts of each server, carried between its runs.

STUN and TURN are probed at most every ``media.interval`` (one allocation
per transport per round is polite, one per minute per server is not
needed); the rounds in between carry the last verdicts, their details
saying how old they are, as the token matrix does (``monitor.checks.carry``).
A verdict is forgotten when the settings or config.js facts it was found
under change, and is not carried past twice the interval.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from monitor.config import Target
from monitor.model import CheckResult, ConfigFacts, MediaReport

__all__ = ["MediaMemory", "MediaVerdicts"]


@dataclass(frozen=True, slots=True)
class MediaVerdicts:
    """One run of the media probes: its checks (stun, turn) and its report."""

    checks: tuple[CheckResult, ...]
    report: MediaReport


@dataclass(frozen=True, slots=True)
class _Entry:
    shaped_by: Hashable
    verdicts: MediaVerdicts
    until: float


def _shaped_by(target: Target, facts: ConfigFacts | None) -> Hashable:
    return (target.url, target.tls_verify, target.ca_file, target.media, facts)


class MediaMemory:
    """The last media verdicts of each server, as long as they may be carried."""

    def __init__(self) -> None:
        self._kept: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def last(self, target: Target, facts: ConfigFacts | None, now: float) -> MediaVerdicts | None:
        entry = self._kept.get(target.name)
        if entry is None:
            return None
        if entry.shaped_by != _shaped_by(target, facts) or now > entry.until:
            del self._kept[target.name]
            return None
        return entry.verdicts

    def due(self, target: Target, facts: ConfigFacts | None, now: float) -> bool:
        """Whether this round probes (half a probe interval of slack for the jitter)."""
        if target.media is None:
            return False
        last = self.last(target, facts, now)
        return last is None or now - last.report.at >= target.media.interval - target.interval / 2

    def keep(self, target: Target, facts: ConfigFacts | None, verdicts: MediaVerdicts) -> None:
        at = verdicts.report.at
        for name in [n for n, e in self._kept.items() if at > e.until]:
            del self._kept[name]
        interval = target.media.interval if target.media is not None else 0.0
        until = at + 2 * max(interval, target.interval)
        self._kept[target.name] = _Entry(_shaped_by(target, facts), verdicts, until)
