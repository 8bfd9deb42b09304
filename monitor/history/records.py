"""The rows history keeps, made on the event loop from reports and decisions.

Making one is cheap (a few attribute reads): the writer thread does the
rest. Texts that came from a server (a failure's detail) are cut to
``DETAIL_MAX`` characters here, so that a hostile server cannot grow the
file; they are escaped only where they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from monitor.checks.signalling.xmpp import XmppResult
from monitor.checks.web.probe import WebResult
from monitor.model import ServerReport
from monitor.selector import Decision

__all__ = ["DETAIL_MAX", "NAME_MAX", "PoolRecord", "ReportRecord", "pool_record", "report_record"]

# Characters of a detail kept (details are a line or two; the rest is noise).
DETAIL_MAX: Final = 300
# Server and pool names are the config's (at most 64), reasons a closed set.
NAME_MAX: Final = 128


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """One finished ladder: when, the verdict, the first failure, the headline timings.

    Timings are seconds (None: that phase did not run); ``checks`` is each
    verdict-deciding check's reason, for the per-check timeline.
    """

    server: str
    at: float
    up: bool
    check: str | None
    reason: str | None
    detail: str | None
    connect: float | None
    tls: float | None
    first_byte: float | None
    ping: float | None
    checks: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """A change of a pool's choice."""

    pool: str
    at: float
    previous: str | None
    chosen: str | None
    reason: str
    detail: str


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _phase(report: ServerReport, name: str) -> float | None:
    web = report.result(WebResult)
    return web.phase_seconds(name) if web is not None else None


def report_record(report: ServerReport) -> ReportRecord:
    """The row of ``report``."""
    failure = report.first_failure
    return ReportRecord(
        server=_cut(report.server, NAME_MAX),
        at=report.finished_at,
        up=report.up,
        check=None if failure is None else failure.check.value,
        reason=None if failure is None else failure.reason.value,
        detail=None if failure is None else _cut(failure.detail, DETAIL_MAX),
        connect=_phase(report, "connect"),
        tls=_phase(report, "tls"),
        first_byte=_phase(report, "processing"),
        ping=xmpp.ping_rtt if (xmpp := report.result(XmppResult)) is not None else None,
        checks=tuple((r.check.value, r.reason.value) for r in report.checks),
    )


def pool_record(decision: Decision) -> PoolRecord:
    """The row of a pool's change of choice."""
    return PoolRecord(
        pool=_cut(decision.pool, NAME_MAX),
        at=decision.at,
        previous=decision.previous,
        chosen=decision.chosen,
        reason=decision.reason.value,
        detail=_cut(decision.detail, DETAIL_MAX),
    )
