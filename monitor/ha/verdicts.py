"""Each server's latest verdict and score as the database holds it (scale-out).

The instance that probes a server writes what the leader needs to judge it in a
pool, and nothing more: each check's reason code (with a short detail), the
verdict, the embed limit and the smoothed round trip the selector compares.
The leader rebuilds a ``ServerReport`` from it for ``monitor.selector.judge``.

What comes back from the database is untrusted: unknown check names or reason
codes, oversized texts and numbers that are not finite are refused (the row is
skipped, as if the server had not been probed yet).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from monitor import escape
from monitor.checks.web.probe import WebResult
from monitor.ladder import Check
from monitor.model import CheckResult, Reason, ServerReport

__all__ = ["MAX_VERDICT_BYTES", "Verdict", "report_of", "verdict_text"]

# A verdict is a dozen checks with a line each: far under this.
MAX_VERDICT_BYTES: Final = 16 * 1024
_MAX_CHECKS: Final = 64
_MAX_DETAIL: Final = 300
_REASONS: Final = {r.value: r for r in Reason}

Verdict = tuple[ServerReport, float | None]


def verdict_text(report: ServerReport) -> str:
    """The report as the verdict row's JSON."""
    web = report.result(WebResult)
    return json.dumps(
        {
            "up": report.up,
            "checks": [
                [c.check, c.reason.value, escape.plain(c.detail, _MAX_DETAIL)]
                for c in report.checks
            ],
            "embed": None if web is None else web.embed_limit_seconds,
            "finished": report.finished_at,
        }
    )


def report_of(server: str, text: str, score: object) -> Verdict | None:
    """The report and score a verdict row stands for; None when anything is off."""
    if len(text) > MAX_VERDICT_BYTES:
        return None
    try:
        raw: Any = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("checks"), list):
        return None
    checks: list[CheckResult] = []
    for item in raw["checks"][:_MAX_CHECKS]:
        if not (isinstance(item, list) and len(item) == 3):
            return None
        name, reason, detail = item
        if not (isinstance(name, str) and reason in _REASONS and isinstance(detail, str)):
            return None
        try:
            check = Check(name)
        except ValueError:
            return None
        checks.append(CheckResult(check, _REASONS[reason], detail[:_MAX_DETAIL]))
    embed, finished = raw.get("embed"), raw.get("finished")
    if embed is not None and not (isinstance(embed, int) and not isinstance(embed, bool)):
        return None
    if not (isinstance(finished, int | float) and _finite(finished)):
        return None
    up = raw.get("up") is True
    first = next((c for c in checks if not c.success and c.reason is not Reason.SKIPPED), None)
    report = ServerReport(
        server=server,
        started_at=float(finished),
        finished_at=float(finished),
        duration=0.0,
        checks=tuple(checks),
        up=up,
        first_failure=None if up else first,
        results={} if embed is None else {WebResult.family: WebResult(embed_limit_seconds=embed)},
    )
    value = float(score) if isinstance(score, int | float) and _finite(score) else None
    if value is not None and not 0 <= value < 3600:
        value = None
    return report, value


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
