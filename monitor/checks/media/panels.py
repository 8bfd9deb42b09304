"""The media family's dashboard panels: TURN and its relay per server (overview), each
service, its round trip, the relay's and its credentials (server)."""

from __future__ import annotations

from monitor.checks.family import PanelRow, Placed
from monitor.grafana import (
    OK_FAIL,
    ONE_SERVER,
    OVERVIEW_UID,
    SERVER_UID,
    SERVERS,
    per_server,
    query,
    sel,
    stat,
    state_timeline,
    thresholds,
    timeseries,
)

__all__ = ["panels"]

_EXPIRY = sel("jitsi_turn_credentials_expiry_timestamp_seconds", ONE_SERVER)


def panels(uid: str) -> tuple[PanelRow, ...]:
    """Its rows: at the end of the overview and of the server's dashboard."""
    if uid == OVERVIEW_UID:
        return (
            PanelRow(
                "end",
                "Media path",
                (
                    Placed(
                        state_timeline(
                            "TURN",
                            "Per server: OK when every TURN service it announces allocated over "
                            "every transport in the last media run, FAIL when one did not (min of "
                            "jitsi_media_check_success for turn and turns). Empty: no TURN "
                            "announced, or media not checked. Runs every media.interval, carried "
                            "between.",
                            [
                                query(
                                    per_server(
                                        "min",
                                        sel("jitsi_media_check_success", SERVERS, 'type=~"turns?"'),
                                    ),
                                    "{{server}}",
                                )
                            ],
                            mappings=OK_FAIL,
                        ),
                        w=6,
                        h=7,
                    ),
                    Placed(
                        state_timeline(
                            "TURN relay",
                            "Per server: OK when two allocations on every TURN service that "
                            "allocated relayed a datagram to each other and back in the last "
                            "media run, FAIL when one did not: the server allocates but media "
                            "does not pass (external-ip, the relay ports, denied peers). "
                            "jitsi_check_success for check turn_relay.",
                            [
                                query(
                                    per_server(
                                        "min",
                                        sel("jitsi_check_success", SERVERS, 'check="turn_relay"'),
                                    ),
                                    "{{server}}",
                                )
                            ],
                            mappings=OK_FAIL,
                        ),
                        w=6,
                        h=7,
                    ),
                    Placed(
                        timeseries(
                            "TURN allocation",
                            "How long the slowest TURN Allocate of each server took with the "
                            "announced credentials, the 401 challenge included "
                            "(jitsi_turn_allocate_seconds).",
                            [
                                query(
                                    per_server("max", sel("jitsi_turn_allocate_seconds", SERVERS)),
                                    "{{server}}",
                                )
                            ],
                            unit="s",
                        ),
                        w=6,
                        h=7,
                    ),
                    Placed(
                        timeseries(
                            "TURN relay round trip",
                            "The slowest round trip of each server's TURN relay test: a datagram "
                            "from one allocation to another on the same service and back "
                            "(jitsi_turn_relay_rtt_seconds).",
                            [
                                query(
                                    per_server("max", sel("jitsi_turn_relay_rtt_seconds", SERVERS)),
                                    "{{server}}",
                                )
                            ],
                            unit="s",
                        ),
                        w=6,
                        h=7,
                    ),
                ),
            ),
        )
    if uid == SERVER_UID:
        media_services = 'type=~"stun|turns?"'
        return (
            PanelRow(
                "end",
                "Media path",
                (
                    Placed(
                        state_timeline(
                            "STUN and TURN services",
                            "Each service the server announces (XEP-0215) or config.js names, per "
                            "transport: OK when it answered the Binding (STUN) or allocated and "
                            "released (TURN) in the last media run (jitsi_media_check_success).",
                            [
                                query(
                                    sel("jitsi_media_check_success", ONE_SERVER, media_services),
                                    "{{service}} {{transport}}",
                                )
                            ],
                            mappings=OK_FAIL,
                        ),
                        w=12,
                        h=8,
                    ),
                    Placed(
                        timeseries(
                            "STUN round trip, TURN allocation and relay",
                            "The Binding's round trip per STUN service (jitsi_stun_rtt_seconds), "
                            "the Allocate per TURN service and transport, 401 challenge "
                            "included (jitsi_turn_allocate_seconds), and the round trip of a "
                            "datagram relayed between two allocations on it "
                            "(jitsi_turn_relay_rtt_seconds).",
                            [
                                query(
                                    sel("jitsi_stun_rtt_seconds", ONE_SERVER),
                                    "{{service}} {{transport}}",
                                ),
                                query(
                                    sel("jitsi_turn_allocate_seconds", ONE_SERVER),
                                    "{{service}} {{transport}}",
                                ),
                                query(
                                    sel("jitsi_turn_relay_rtt_seconds", ONE_SERVER),
                                    "{{service}} {{transport}} relay",
                                ),
                            ],
                            unit="s",
                        ),
                        w=8,
                        h=8,
                    ),
                    Placed(
                        stat(
                            "TURN credentials valid for",
                            "How long the TURN credentials the server announced stay valid "
                            "(jitsi_turn_credentials_expiry_timestamp_seconds - time()); "
                            "red once expired.",
                            [
                                query(
                                    f"{_EXPIRY} - time()",
                                    "{{location}}",
                                )
                            ],
                            unit="s",
                            defaults={"thresholds": thresholds("red", (0, "green"))},
                        ),
                        w=4,
                        h=8,
                    ),
                ),
            ),
        )
    return ()
