"""The jwt family's metric families and their lines: each token case, and its age."""

from __future__ import annotations

from collections.abc import Mapping

from monitor.checks.family import Labels, Slot
from monitor.checks.jwt.result import JwtResult
from monitor.model import ServerReport
from monitor.promtext import MetricFamily, esc, gauge, num

__all__ = ["METRICS", "lines"]

METRICS: tuple[tuple[Slot, MetricFamily], ...] = (
    (
        "steps",
        gauge(
            "jitsi_jwt_case_success",
            "1 when a case of the token check matrix came out as it must.",
        ),
    ),
    (
        "steps",
        gauge(
            "jitsi_jwt_case_age_seconds",
            "How old the verdict of a token case was at the server's last report: 0 for the "
            "valid token (every round); the other cases run every jwt.matrix_interval and are "
            "carried in between.",
        ),
    ),
)


def lines(report: ServerReport, labels: Labels) -> Mapping[str, str]:
    """The jwt family's lines of one report, by metric family name."""
    jwt = report.result(JwtResult)
    if jwt is None:
        return {}
    ls = labels.both
    return {
        "jitsi_jwt_case_success": "".join(
            f'jitsi_jwt_case_success{{case="{esc(case)}",{ls}}} {"1.0" if passed else "0.0"}\n'
            for case, passed in jwt.cases
        ),
        "jitsi_jwt_case_age_seconds": "".join(
            f'jitsi_jwt_case_age_seconds{{case="{esc(case)}",{ls}}} {num(round(age, 3))}\n'
            for case, age in jwt.ages(report.finished_at)
        ),
    }
