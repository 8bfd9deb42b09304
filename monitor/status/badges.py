"""``/badge/{server}.svg`` and ``/badge/pool/{pool}.svg``: status and uptime, to embed."""

from __future__ import annotations

from monitor.history import ServerSummary
from monitor.status.layout import percent
from monitor.status.svg import badge

__all__ = ["pool_badge", "server_badge"]


def server_badge(name: str, verdict: str, summary: ServerSummary | None) -> str:
    """``name | up 99.95% (30 d)``."""
    value = verdict
    if summary is not None and summary.uptime_30d is not None:
        value += f" {percent(summary.uptime_30d)} (30 d)"
    return badge(name, verdict, value)


def pool_badge(name: str, chosen: str | None) -> str:
    """``pool | lab-2``, or ``pool | none eligible``."""
    if chosen is None:
        return badge(f"pool {name}", "down", "none eligible")
    return badge(f"pool {name}", "up", chosen)
