"""The overview dashboard's row of the users' view (scripts/dashboards.py lays it out)."""

from __future__ import annotations

from monitor.grafana import SERVERS, Json, query, sel, timeseries

__all__ = ["user_panels"]


def user_panels() -> list[tuple[Json, int, int]]:
    """(panel, width, height) of each panel, left to right."""
    users = sel("jitsi_user_rtt_seconds", SERVERS, 'region="all"', 'quantile="0.5"')
    monitor = sel("jitsi_rtt_seconds", SERVERS, 'method="xmpp_ping"')
    return [
        (
            timeseries(
                "Users' round trip against the monitor's",
                "Per member: the users' p50 from browser beacons over the window "
                '(jitsi_user_rtt_seconds, region="all") beside the monitor\'s own smoothed '
                "XMPP ping (jitsi_rtt_seconds). A pool with nearest: users scores by the "
                "first once the window holds enough beacons from enough prefixes.",
                [
                    query(users, "{{server}} users p50"),
                    query(monitor, "{{server}} monitor"),
                ],
                unit="s",
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Beacons and prefixes in the window",
                "Beacons that count for each member (jitsi_user_rtt_samples, each prefix "
                "capped) and the distinct client prefixes among them (jitsi_user_rtt_prefixes): "
                "users' timings count once both reach beacon.min_samples and min_prefixes.",
                [
                    query(
                        sel("jitsi_user_rtt_samples", SERVERS, 'region="all"'),
                        "{{server}} beacons",
                    ),
                    query(sel("jitsi_user_rtt_prefixes", SERVERS), "{{server}} prefixes"),
                ],
                unit="short",
                defaults={"decimals": 0},
            ),
            6,
            8,
        ),
        (
            timeseries(
                "Rejected beacons",
                "Beacons /beacon refused per second, by reason (jitsi_beacons_rejected_total): "
                "origin, rate_limited, too_large, malformed, unknown_pool, unknown_server, "
                "bad_number, bad_region. A steady rate_limited is someone flooding.",
                [
                    query(
                        "sum by (reason) (rate("
                        f"{sel('jitsi_beacons_rejected_total')}[$__rate_interval]))",
                        "{{reason}}",
                    )
                ],
                unit="reqps",
            ),
            6,
            8,
        ),
    ]
