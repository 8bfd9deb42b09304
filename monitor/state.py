"""What the monitor knows now: the latest report per server and a few counters.

The scheduler writes here; metrics, the CLI and the HTTP app only read.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from monitor.config import Target
from monitor.model import Reason, ServerReport

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

    def set_targets(self, targets: list[Target]) -> None:
        """Adopt a new server list; forget everything about removed servers."""
        self.targets = {t.name: t for t in targets}
        for store in (self.reports, self.rtt_tcp_connect, self.rtt_xmpp_ping):
            for name in list(store):
                if name not in self.targets:
                    del store[name]

    def record(self, report: ServerReport) -> None:
        """Keep a finished ladder's report (ignored if the server was removed meanwhile)."""
        if report.server not in self.targets:
            return
        self.reports[report.server] = report
        for result in report.checks:
            if result.reason is Reason.INTERNAL_ERROR:
                self.probe_errors[result.check.value] += 1
        _smooth(self.rtt_tcp_connect, report.server, report.connect_rtt)
        _smooth(self.rtt_xmpp_ping, report.server, report.ping_rtt)


def _smooth(store: dict[str, float], server: str, sample: float | None) -> None:
    """Fold a sample into the server's EWMA; no sample, no change."""
    if sample is None:
        return
    old = store.get(server)
    store[server] = sample if old is None else old + EWMA_ALPHA * (sample - old)
