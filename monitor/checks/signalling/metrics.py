"""The signalling family's metric family and its lines: the XMPP ladder's steps."""

from __future__ import annotations

from collections.abc import Mapping

from monitor.checks.family import Labels, Slot
from monitor.checks.signalling.xmpp import XmppResult
from monitor.model import ServerReport
from monitor.promtext import MetricFamily, esc, gauge, num

__all__ = ["METRICS", "lines"]

METRICS: tuple[tuple[Slot, MetricFamily], ...] = (
    (
        "steps",
        gauge(
            "jitsi_xmpp_duration_seconds", "Duration of each step of the signalling (XMPP) ladder."
        ),
    ),
)


def lines(report: ServerReport, labels: Labels) -> Mapping[str, str]:
    """The signalling family's lines of one report, by metric family name."""
    xmpp = report.result(XmppResult)
    if xmpp is None:
        return {}
    loc, srv = labels.location, labels.server
    return {
        "jitsi_xmpp_duration_seconds": "".join(
            f'jitsi_xmpp_duration_seconds{{location="{loc}",phase="{esc(p.name)}",'
            f'server="{srv}"}} {num(p.seconds)}\n'
            for p in xmpp.phases
        )
    }
