"""The web family's dashboard panels: the page's HTTP phases, its status, TLS and
certificate, and the embed limit of its config.js."""

from __future__ import annotations

from monitor.checks.family import DashboardPart, FleetColumn, PanelRow, Panels, Placed
from monitor.grafana import (
    BLUE,
    CERT_THRESHOLDS,
    DAYS,
    ONE_SERVER,
    OVERVIEW_UID,
    SERVER_UID,
    SERVERS,
    bar_gauge,
    cert_days,
    per_server,
    phase_queries,
    query,
    sel,
    server_phase_queries,
    stat,
    state_timeline,
    thresholds,
    timeseries,
    value_map,
)
from monitor.ladder import HTTP_PHASES

__all__ = ["panels"]

_STATUS_COLOURS = thresholds("red", (200, "green"), (300, "orange"), (400, "red"))


def panels(uid: str) -> tuple[DashboardPart, ...]:
    """Its parts of the overview and of the server's dashboard."""
    if uid == OVERVIEW_UID:
        return _overview()
    if uid == SERVER_UID:
        return _server()
    return ()


def _overview() -> tuple[DashboardPart, ...]:
    return (
        FleetColumn(
            "facts",
            "cert days left",
            per_server("min", cert_days(SERVERS)),
            {
                "unit": DAYS,
                "decimals": 0,
                "thresholds": CERT_THRESHOLDS,
                "custom.cellOptions": {"type": "color-text"},
            },
        ),
        FleetColumn(
            "facts",
            "embed limit",
            per_server("max", sel("jitsi_embed_limit_seconds", SERVERS)),
            {
                "unit": "s",
                "mappings": value_map((0, "none", "green")),
                "thresholds": thresholds("green", (1, "orange")),
                "custom.cellOptions": {"type": "color-text"},
            },
        ),
        Panels(
            "timing",
            (
                Placed(
                    timeseries(
                        "HTTP phases (mean of the selected servers)",
                        "Phases of the GET of each server's page (jitsi_http_duration_seconds), "
                        "stacked in ladder order and averaged over the servers in $server. Pick "
                        "one server, or open its drill-down, to see it alone.",
                        phase_queries("jitsi_http_duration_seconds", HTTP_PHASES, (SERVERS,)),
                        unit="s",
                        stacked=True,
                    ),
                    w=8,
                    h=9,
                ),
            ),
        ),
        PanelRow(
            "end",
            "Certificates",
            (
                Placed(
                    bar_gauge(
                        "Certificate expiry",
                        "Days until the certificate each server presented expires "
                        "(jitsi_ssl_earliest_cert_expiry - time()), soonest first. Red under 14 "
                        "days, orange under 30. Servers served over plain HTTP have none.",
                        [
                            query(
                                f"sort(min by (server) ({cert_days(SERVERS)}))",
                                "{{server}}",
                                instant=True,
                            )
                        ],
                        unit=DAYS,
                        defaults={"decimals": 0, "thresholds": CERT_THRESHOLDS},
                    ),
                    w=24,
                    h=7,
                ),
            ),
        ),
    )


def _server() -> tuple[DashboardPart, ...]:
    now = (
        stat(
            "HTTP status",
            "Status of GET / after redirects (jitsi_http_status_code).",
            [query(sel("jitsi_http_status_code", ONE_SERVER), "{{location}}")],
            unit="none",
            defaults={"thresholds": _STATUS_COLOURS},
        ),
        stat(
            "TLS version",
            "TLS version negotiated on the ladder's first connection "
            "(the version label of jitsi_tls_version_info).",
            [query(sel("jitsi_tls_version_info", ONE_SERVER), table=True)],
            unit="none",
            fields="/^version$/",
            defaults={"noValue": "no TLS", "color": BLUE},
        ),
        stat(
            "Certificate",
            "Days until the certificate the server presented expires "
            "(jitsi_ssl_earliest_cert_expiry - time()).",
            [query(cert_days(ONE_SERVER), "{{location}}")],
            unit=DAYS,
            defaults={"decimals": 0, "noValue": "no TLS", "thresholds": CERT_THRESHOLDS},
        ),
        stat(
            "Embed limit",
            "300 s when config.js sets disableIframeAPI (embedded meetings, as in an LMS, "
            "end after 5 minutes), none when not (jitsi_embed_limit_seconds).",
            [query(sel("jitsi_embed_limit_seconds", ONE_SERVER), "{{location}}")],
            unit="s",
            defaults={
                "mappings": value_map((0, "none", "green")),
                "noValue": "unknown",
                "thresholds": thresholds("green", (1, "orange")),
            },
        ),
    )
    return (
        Panels("now", tuple(Placed(p, w=3, h=4) for p in now)),
        Panels(
            "phases",
            (
                Placed(
                    timeseries(
                        "HTTP phases",
                        "Phases of the GET of the server's page, stacked in ladder order "
                        "(jitsi_http_duration_seconds): resolve, connect, tls, processing "
                        "(request to first byte), transfer (first byte to end of body), summed "
                        "over redirects.",
                        server_phase_queries(
                            "jitsi_http_duration_seconds", HTTP_PHASES, instant=False
                        ),
                        unit="s",
                        stacked=True,
                    ),
                    w=12,
                    h=9,
                ),
            ),
        ),
        Panels(
            "phases.last",
            (
                Placed(
                    bar_gauge(
                        "HTTP phases, last ladder",
                        "The HTTP phases of the last ladder, in ladder order "
                        "(jitsi_http_duration_seconds). tls is absent for http:// servers.",
                        server_phase_queries(
                            "jitsi_http_duration_seconds", HTTP_PHASES, instant=True
                        ),
                        unit="s",
                        defaults={"color": {"mode": "continuous-GrYlRd"}},
                    ),
                    w=12,
                    h=8,
                ),
            ),
        ),
        PanelRow(
            "facts",
            "Web and TLS",
            (
                Placed(
                    state_timeline(
                        "HTTP status code",
                        "Status of GET / after redirects over time (jitsi_http_status_code).",
                        [query(sel("jitsi_http_status_code", ONE_SERVER), "status")],
                        defaults={"thresholds": _STATUS_COLOURS},
                    ),
                    w=6,
                    h=7,
                ),
                Placed(
                    state_timeline(
                        "TLS version",
                        "TLS version negotiated over time (jitsi_tls_version_info): one row "
                        "per version.",
                        [query(sel("jitsi_tls_version_info", ONE_SERVER), "{{version}}")],
                        mappings=value_map((1, "in use", "blue")),
                    ),
                    w=6,
                    h=7,
                ),
                Placed(
                    timeseries(
                        "Certificate days left",
                        "Days until the presented certificate expires, over time "
                        "(jitsi_ssl_earliest_cert_expiry - time()); a jump up is a renewal.",
                        [query(cert_days(ONE_SERVER), "{{location}}")],
                        unit=DAYS,
                        defaults={"decimals": 0},
                    ),
                    w=6,
                    h=7,
                ),
            ),
        ),
    )
