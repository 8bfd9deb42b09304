"""The signalling family's dashboard panels: the steps of the XMPP ladder."""

from __future__ import annotations

from monitor.checks.family import DashboardPart, Panels, Placed
from monitor.grafana import (
    OVERVIEW_UID,
    SERVER_UID,
    SERVERS,
    bar_gauge,
    phase_queries,
    server_phase_queries,
    timeseries,
)
from monitor.ladder import XMPP_PHASES

__all__ = ["panels"]


def panels(uid: str) -> tuple[DashboardPart, ...]:
    """Its panels: in the overview's probe timing, in the server's ladder row."""
    if uid == OVERVIEW_UID:
        mean = timeseries(
            "XMPP phases (mean of the selected servers)",
            "Steps of the signalling ladder (jitsi_xmpp_duration_seconds), stacked in ladder "
            "order and averaged over the servers in $server. settle appears only for "
            "servers with a jwt block.",
            phase_queries("jitsi_xmpp_duration_seconds", XMPP_PHASES, (SERVERS,)),
            unit="s",
            stacked=True,
        )
        return (Panels("timing", (Placed(mean, w=8, h=9),)),)
    if uid != SERVER_UID:
        return ()
    over_time = timeseries(
        "XMPP phases",
        "Steps of the signalling ladder, stacked in ladder order "
        "(jitsi_xmpp_duration_seconds): upgrade, open, auth, bind, ping, focus, join, "
        "settle (servers with jwt) and leave.",
        server_phase_queries("jitsi_xmpp_duration_seconds", XMPP_PHASES, instant=False),
        unit="s",
        stacked=True,
    )
    last = bar_gauge(
        "XMPP phases, last ladder",
        "The signalling steps of the last ladder, in ladder order "
        "(jitsi_xmpp_duration_seconds). Steps after a failure are absent.",
        server_phase_queries("jitsi_xmpp_duration_seconds", XMPP_PHASES, instant=True),
        unit="s",
        defaults={"color": {"mode": "continuous-GrYlRd"}},
    )
    return (
        Panels("phases", (Placed(over_time, w=12, h=9),)),
        Panels("phases.last", (Placed(last, w=12, h=8),)),
    )
