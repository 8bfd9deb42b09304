"""The signalling family's views: its JSON keys, its column of ``check``'s table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor import escape
from monitor.checks.family import Column, JsonPart
from monitor.checks.signalling.rows import ROWS
from monitor.checks.signalling.xmpp import XmppResult
from monitor.checks.web.view import ms
from monitor.model import Reason, ServerReport

__all__ = ["COLUMNS", "JSON"]


def _steps(report: ServerReport) -> Mapping[str, Any]:
    xmpp = report.result(XmppResult) or XmppResult()
    return {
        "xmpp": {
            "phases": {p.name: round(p.seconds, 6) for p in xmpp.phases},
            "ping_rtt_seconds": None if xmpp.ping_rtt is None else round(xmpp.ping_rtt, 6),
            "role": xmpp.role,
            "affiliation": xmpp.affiliation,
        }
    }


JSON: tuple[JsonPart, ...] = (JsonPart("steps", _steps),)


def _cell(report: ServerReport) -> str:
    """The signalling verdict in a few words: the ping RTT, or what failed."""
    checks = [report.check(r.check) for r in ROWS]
    run = [c for c in checks if c is not None]
    if not run:
        return "off"
    failed = next((c for c in run if not c.success), None)
    if failed is not None and failed.reason is Reason.SKIPPED:
        return "skipped"
    if failed is not None:
        return f"[red]{escape.term(f'{failed.check.value}: {failed.reason.value}')}[/]"
    xmpp = report.result(XmppResult)
    return f"[green]ok[/] {ms(xmpp.ping_rtt if xmpp is not None else None)}"


COLUMNS: tuple[Column, ...] = (Column("steps", "signalling", _cell),)
