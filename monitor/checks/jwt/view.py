"""The jwt family's views: its JSON key, its column of ``check``'s table, its tags
on the status pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor import escape
from monitor.checks.family import Column, JsonPart
from monitor.checks.jwt.result import JwtResult
from monitor.ladder import Check
from monitor.model import Reason, ServerReport

__all__ = ["COLUMNS", "JSON", "tags"]


def _steps(report: ServerReport) -> Mapping[str, Any]:
    """The token cases, each with how old its verdict is (the matrix runs at its interval)."""
    jwt = report.result(JwtResult)
    if jwt is None or not jwt.cases:
        return {"jwt": None}
    ages = dict(jwt.ages(report.finished_at))
    return {
        "jwt": {
            "matrix_at": jwt.matrix_at,
            "cases": {
                case.value: {
                    "passed": passed,
                    "age_seconds": None if case not in ages else round(ages[case], 3),
                }
                for case, passed in jwt.cases
            },
        }
    }


JSON: tuple[JsonPart, ...] = (JsonPart("steps", _steps),)


def _cell(report: ServerReport) -> str:
    """The token verdicts in plain words."""
    valid = report.check(Check.JWT_VALID)
    if valid is None:
        return "-"
    if not valid.success:
        shown = escape.term(valid.reason.value)
        return f"[red]token {shown}[/]" if valid.reason is not Reason.SKIPPED else "-"
    words = []
    enforced = report.check(Check.JWT_ENFORCED)
    if enforced is not None and enforced.reason is Reason.JWT_NOT_ENFORCED:
        words.append("[red]NOT ENFORCED[/]")
    elif enforced is not None and enforced.reason is Reason.JWT_OPTIONAL:
        words.append("[red]TOKEN OPTIONAL[/]")
    elif enforced is not None and not enforced.success:
        words.append(escape.term(f"enforcement {enforced.reason.value}"))
    moderation = report.check(Check.MODERATION)
    if moderation is not None and moderation.reason is Reason.MODERATION_CLAIM_IGNORED:
        words.append("[red]moderator claim ignored[/]")
    elif moderation is not None and not moderation.success:
        words.append(escape.term(moderation.reason.value))
    if words:
        return "; ".join(words)
    guests = enforced is not None and "guests are allowed" in enforced.detail
    return "[green]ok[/] (guests allowed)" if guests else "[green]ok[/]"


COLUMNS: tuple[Column, ...] = (Column("steps", "JWT", _cell),)


def tags(report: ServerReport) -> tuple[tuple[str, str], ...]:
    """A status page's small labels: each token case, ok or failed."""
    jwt = report.result(JwtResult)
    if jwt is None:
        return ()
    return tuple(
        (f"jwt {case.value} {'ok' if passed else 'failed'}", "ok" if passed else "bad")
        for case, passed in jwt.cases
    )
