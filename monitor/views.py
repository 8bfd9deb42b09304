"""Plain-data and human views of reports, shared by the CLI and the HTTP app.

A server's view is the ladder's own keys plus each check family's
(``monitor.checks.<family>.view``).
"""

from __future__ import annotations

from typing import Any

from monitor.checks import FAMILIES
from monitor.checks.family import Family
from monitor.checks.media.view import media_dict
from monitor.checks.web.view import cert_days_left
from monitor.domain import Target
from monitor.model import ServerReport
from monitor.state import State

__all__ = ["cert_days_left", "media_dict", "pool_dict", "report_dict", "verdict"]


def verdict(report: ServerReport | None) -> str:
    """``up``, ``down`` or ``unknown`` (not probed yet)."""
    if report is None:
        return "unknown"
    return "up" if report.up else "down"


def report_dict(
    target: Target, report: ServerReport | None, families: tuple[Family, ...] = FAMILIES
) -> dict[str, Any]:
    """A JSON-ready description of one server and its latest report.

    The keys of each family come from its ``json`` parts, placed by their
    slot (``monitor.checks.family.Slot``).
    """
    out: dict[str, Any] = {
        "server": target.name,
        "url": target.url,
        "kind": target.kind,
        "labels": dict(target.labels),
        "verdict": verdict(report),
    }
    if report is None:
        return out
    failure = report.first_failure

    def slot(name: str) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for family in families:
            for part in family.json:
                if part.slot == name:
                    keys.update(part.keys(report))
        return keys

    out.update(
        {
            "up": report.up,
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "duration_seconds": round(report.duration, 6),
            **slot("steps"),
            **slot("facts"),
            "checks": [
                {
                    "check": r.check.value,
                    "success": r.success,
                    "reason": r.reason.value,
                    "detail": r.detail,
                    "phases": {p.name: round(p.seconds, 6) for p in r.phases},
                }
                for r in report.checks
            ],
            "first_failure": None
            if failure is None
            else {
                "check": failure.check.value,
                "reason": failure.reason.value,
                "detail": failure.detail,
            },
            **slot("end"),
        }
    )
    return out


def pool_dict(state: State, name: str) -> dict[str, Any]:
    """A JSON-ready description of a pool: its choice, why, and each candidate."""
    pool = state.pools[name]
    pool_state = state.pool_states.get(name)
    last = next((d for d in reversed(state.decisions) if d.pool == name), None)
    stale = bool(pool_state and pool_state.stale)
    return {
        "pool": name,
        "chosen": None if pool_state is None or stale else pool_state.current,
        "stale": stale,
        "last_choice": pool_state.current if pool_state else None,
        "changed_at": pool_state.changed_at if pool_state and pool_state.changed_at else None,
        "why": None
        if last is None
        else {"reason": last.reason, "detail": last.detail, "at": last.at},
        "require": list(pool.require),
        "embedding": pool.embedding,
        "nearest": pool.nearest,
        "failovers": dict(pool_state.failovers) if pool_state else {},
        "candidates": [
            {
                "server": c.server,
                "eligible": c.eligible,
                "why": c.why or None,
                "tier": c.tier + 1,
                "score_seconds": None if c.score is None else round(c.score, 6),
                "scored_by": c.by,
            }
            for c in state.pool_candidates.get(name, [])
        ],
    }
