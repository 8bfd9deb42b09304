"""What the monitor knows now: the latest report per server and a few counters.

The scheduler writes here; metrics, the CLI and the HTTP app only read.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

from monitor.config import Target
from monitor.model import Reason, ServerReport
from monitor.selector import Candidate, Decision, PoolSettings, PoolState, decide, judge

__all__ = ["EWMA_ALPHA", "State"]

# Weight of a new sample in the smoothed round trip: one noisy sample moves
# the average by a third of its deviation, a lasting change shows within a
# few rounds.
EWMA_ALPHA: Final = 0.3


@dataclass
class State:
    """Latest results, smoothed round trips and the monitor's own health."""

    location: str = "default"
    targets: dict[str, Target] = field(default_factory=dict)
    reports: dict[str, ServerReport] = field(default_factory=dict)
    rtt_tcp_connect: dict[str, float] = field(default_factory=dict)
    rtt_xmpp_ping: dict[str, float] = field(default_factory=dict)
    probe_errors: Counter[str] = field(default_factory=Counter)
    schedule_lag: float = 0.0
    config_reload_ok: bool = True
    config_reload_time: float = field(default_factory=time.time)
    pools: dict[str, PoolSettings] = field(default_factory=dict)
    pool_states: dict[str, PoolState] = field(default_factory=dict)
    pool_candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    # The latest decisions, newest last (what /api/v1/pools shows as "why").
    decisions: deque[Decision] = field(default_factory=lambda: deque(maxlen=100))

    def set_pools(self, pools: list[PoolSettings]) -> None:
        """Adopt the pools; a pool that stays keeps its choice and timers."""
        self.pools = {p.name: p for p in pools}
        for store in (self.pool_states, self.pool_candidates):
            for name in list(store):
                if name not in self.pools:
                    del store[name]
        for pool in pools:
            self.pool_states.setdefault(pool.name, PoolState())
            self.pool_candidates[pool.name] = self._candidates(pool)

    def score(self, server: str) -> float | None:
        """The smoothed round trip the selector compares: the XMPP ping where
        measured (a round trip through the server), else the TCP connect."""
        return self.rtt_xmpp_ping.get(server, self.rtt_tcp_connect.get(server))

    def _candidates(self, pool: PoolSettings) -> list[Candidate]:
        return [judge(pool, s, self.reports.get(s), self.score(s)) for s in pool.servers]

    def set_targets(self, targets: list[Target]) -> None:
        """Adopt a new server list; forget everything about removed servers."""
        self.targets = {t.name: t for t in targets}
        for store in (self.reports, self.rtt_tcp_connect, self.rtt_xmpp_ping):
            for name in list(store):
                if name not in self.targets:
                    del store[name]

    def record(self, report: ServerReport) -> list[Decision]:
        """Keep a finished ladder's report; return the pool choices it changed.

        Ignored if the server was removed from the config meanwhile.
        """
        if report.server not in self.targets:
            return []
        self.reports[report.server] = report
        for result in report.checks:
            if result.reason is Reason.INTERNAL_ERROR:
                self.probe_errors[result.check.value] += 1
        _smooth(self.rtt_tcp_connect, report.server, report.connect_rtt)
        _smooth(self.rtt_xmpp_ping, report.server, report.ping_rtt)
        made = self.select(report.server, report.finished_at)
        self.decisions.extend(made)
        return made

    def select(self, server: str | None, now: float) -> list[Decision]:
        """Re-judge the pools ``server`` belongs to (all pools when None)."""
        made = []
        for pool in self.pools.values():
            if server is not None and server not in pool.servers:
                continue
            candidates = self._candidates(pool)
            self.pool_candidates[pool.name] = candidates
            state, decision = decide(
                pool, self.pool_states.get(pool.name, PoolState()), candidates, now, round_of=server
            )
            self.pool_states[pool.name] = state
            if decision is not None:
                made.append(decision)
        return made


def _smooth(store: dict[str, float], server: str, sample: float | None) -> None:
    """Fold a sample into the server's EWMA; no sample, no change."""
    if sample is None:
        return
    old = store.get(server)
    store[server] = sample if old is None else old + EWMA_ALPHA * (sample - old)
