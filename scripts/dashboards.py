#!/usr/bin/env python3
"""Write the Grafana dashboards of jitsi-monitor into dashboards/grafana/.

    python scripts/dashboards.py           # rewrite the JSON files
    python scripts/dashboards.py --check   # exit 1 when they differ from what it would write

The JSON is committed so Grafana can provision it as is; this script is where
it is edited. It needs the monitor's package (run it with the project's venv):
the panel builders (monitor/grafana.py), the ladder table and the check
families (monitor/checks/), each of which adds its own rows of panels
(monitor/checks/<family>/panels.py) where this script lays out its slots.
The output is deterministic (sorted keys, 2-space indent, trailing newline)
so a change reviews as a small diff.

Conventions (tests/unit/metrics/test_dashboards.py checks them): every panel and query
uses the `datasource` variable, every panel has a unit and a description,
every selector filters by `location=~"$location"`, rates use
`$__rate_interval`, and every metric is one the monitor exports.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the monitor's package, also when it is not installed

from monitor.beacon.panels import user_panels  # noqa: E402
from monitor.checks import FAMILIES, LADDER  # noqa: E402
from monitor.checks.family import lay_out  # noqa: E402
from monitor.grafana import (  # noqa: E402
    BLUE,
    CERT_THRESHOLDS,
    DAYS,
    JOB,
    OK_FAIL,
    ONE_SERVER,
    OVERVIEW_UID,
    POOLS,
    SCOPE,
    SERVER_UID,
    SERVERS,
    Grid,
    Json,
    annotation,
    bar_gauge,
    cert_days,
    common_variables,
    dashboard,
    dashboard_link,
    override,
    per_server,
    query,
    query_variable,
    sel,
    stat,
    state_timeline,
    table,
    thresholds,
    timeseries,
    value_map,
    vital,
)
from monitor.ladder import HTTP_PHASES, XMPP_PHASES  # noqa: E402

OUT_DIR = ROOT / "dashboards" / "grafana"

# (check label, column title), in the order the ladder runs them; the embed
# verdict last, after the checks that decide up or down.
CHECKS = tuple(
    (r.check.value, r.title) for r in sorted(LADDER, key=lambda r: not (r.verdict or r.require))
)


def fleet_table() -> Json:
    columns: list[tuple[str, str, str]] = [  # (title, expr, kind)
        ("verdict", per_server("max", sel("jitsi_server_up", SERVERS)), "ok_fail"),
        *(
            (
                title,
                per_server("max", sel("jitsi_check_success", SERVERS, f'check="{check}"')),
                "ok_fail",
            )
            for check, title in CHECKS
        ),
        ("JWT matrix", per_server("min", sel("jitsi_jwt_case_success", SERVERS)), "ok_fail"),
        (
            "ping RTT",
            per_server("max", sel("jitsi_rtt_seconds", SERVERS, 'method="xmpp_ping"')),
            "seconds",
        ),
        (
            "connect RTT",
            per_server("max", sel("jitsi_rtt_seconds", SERVERS, 'method="tcp_connect"')),
            "seconds",
        ),
        ("cert days left", per_server("min", cert_days(SERVERS)), "days"),
        ("embed limit", per_server("max", sel("jitsi_embed_limit_seconds", SERVERS)), "embed"),
        (
            "last probe",
            per_server("max", f"time() - {sel('jitsi_last_probe_timestamp_seconds', SERVERS)}"),
            "seconds",
        ),
    ]
    refs = string.ascii_uppercase
    rename = {f"Value #{refs[i]}": title for i, (title, _, _) in enumerate(columns)}
    order = {"server": 0, "location": 1} | {f"Value #{refs[i]}": i + 2 for i in range(len(columns))}
    kinds: dict[str, Json] = {  # field config of each kind of column
        "ok_fail": {
            "custom.cellOptions": {"mode": "basic", "type": "color-background"},
            "custom.align": "center",
            "mappings": OK_FAIL,
        },
        "seconds": {"unit": "s", "decimals": 1},
        "days": {
            "unit": DAYS,
            "decimals": 0,
            "thresholds": CERT_THRESHOLDS,
            "custom.cellOptions": {"type": "color-text"},
        },
        "embed": {
            "unit": "s",
            "mappings": value_map((0, "none", "green")),
            "thresholds": thresholds("green", (1, "orange")),
            "custom.cellOptions": {"type": "color-text"},
        },
    }
    drill_down = (
        f"/d/{SERVER_UID}/jitsi-server?${{datasource:queryparam}}&${{job:queryparam}}"
        "&var-location=${__data.fields.location}&var-server=${__value.raw}&${__url_time_range}"
    )
    overrides = [
        override(
            "byName",
            "server",
            {"links": [{"title": "Open the drill-down for ${__value.raw}", "url": drill_down}]},
        ),
        *(override("byName", title, kinds[kind]) for title, _, kind in columns),
    ]
    return table(
        "Fleet",
        "One row per server: the verdict (jitsi_server_up), each check's success "
        "(jitsi_check_success; empty when the check is not run), the token matrix (all "
        "cases as they must be), smoothed round trips, days until the certificate expires, "
        "the embed limit (300 s when config.js sets disableIframeAPI) and how long ago the "
        "last ladder finished. Click a server for its drill-down.",
        [query(expr, table=True) for _, expr, _ in columns],
        overrides=overrides,
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": order,
                    "renameByName": rename,
                },
            },
        ],
        sort_by="verdict",
    )


def phase_queries(metric: str, phases: tuple[str, ...], matchers: tuple[str, ...]) -> list[Json]:
    """One query per phase, in ladder order (the order they stack and list in)."""
    queries = []
    for phase in phases:
        selector = sel(metric, *matchers, f'phase="{phase}"')
        queries.append(query(f"avg by (phase) ({selector})", phase))
    return queries


def overview() -> Json:
    grid = Grid()

    grid.row("Fleet")
    grid.add(fleet_table(), w=24, h=10)

    grid.row("Probe timing")
    grid.add(
        timeseries(
            "Probe duration",
            "How long each server's whole ladder took (jitsi_probe_duration_seconds): web "
            "files, signalling, focus, the join and, with a jwt block, the token matrix.",
            [query(sel("jitsi_probe_duration_seconds", SERVERS), "{{server}}")],
            unit="s",
        ),
        w=8,
        h=9,
    )
    grid.add(
        timeseries(
            "HTTP phases (mean of the selected servers)",
            "Phases of the GET of each server's page (jitsi_http_duration_seconds), stacked "
            "in ladder order and averaged over the servers in $server. Pick one server, or "
            "open its drill-down, to see it alone.",
            phase_queries("jitsi_http_duration_seconds", HTTP_PHASES, (SERVERS,)),
            unit="s",
            stacked=True,
        ),
        w=8,
        h=9,
    )
    grid.add(
        timeseries(
            "XMPP phases (mean of the selected servers)",
            "Steps of the signalling ladder (jitsi_xmpp_duration_seconds), stacked in ladder "
            "order and averaged over the servers in $server. settle appears only for "
            "servers with a jwt block.",
            phase_queries("jitsi_xmpp_duration_seconds", XMPP_PHASES, (SERVERS,)),
            unit="s",
            stacked=True,
        ),
        w=8,
        h=9,
    )

    grid.row("Round trip")
    grid.add(
        timeseries(
            "Signalling round trip (XMPP ping)",
            "Smoothed (EWMA) XEP-0199 ping round trip (jitsi_rtt_seconds, method xmpp_ping): "
            "what pools use as a member's score.",
            [query(sel("jitsi_rtt_seconds", SERVERS, 'method="xmpp_ping"'), "{{server}}")],
            unit="s",
        ),
        w=12,
        h=8,
    )
    grid.add(
        timeseries(
            "TCP connect round trip",
            "Smoothed (EWMA) time of the ladder's first successful TCP connect "
            "(jitsi_rtt_seconds, method tcp_connect): the score of servers without signalling.",
            [query(sel("jitsi_rtt_seconds", SERVERS, 'method="tcp_connect"'), "{{server}}")],
            unit="s",
        ),
        w=12,
        h=8,
    )

    grid.row("Pools")
    grid.add(
        state_timeline(
            "Pool choice",
            "Which member each pool chose over time (jitsi_pool_selected == 1), and when a "
            "pool had no eligible member at all (jitsi_pool_stale == 1: /go answers 503). "
            "Failovers are also marked as annotations on every time panel.",
            [
                query(f"{sel('jitsi_pool_selected', POOLS)} == 1", "{{pool}}: {{server}}"),
                query(f"{sel('jitsi_pool_stale', POOLS)} == 1", "{{pool}}: none eligible"),
            ],
            mappings=value_map((1, "chosen", "green")),
            overrides=[
                override("byFrameRefID", "B", {"mappings": value_map((1, "none eligible", "red"))})
            ],
        ),
        w=12,
        h=8,
    )
    grid.add(
        timeseries(
            "Eligible servers per pool",
            "How many members of each pool pass what the pool requires "
            "(jitsi_pool_eligible_servers). At 0 the pool has no choice.",
            [query(sel("jitsi_pool_eligible_servers", POOLS), "{{pool}}")],
            unit="short",
            defaults={"decimals": 0},
        ),
        w=6,
        h=8,
    )
    grid.add(
        timeseries(
            "Pool member scores",
            "The score the selector used for each member (jitsi_pool_server_score): "
            "its smoothed XMPP ping round trip, else its TCP connect time. Lower is better; "
            "members of an earlier tier win regardless.",
            [query(sel("jitsi_pool_server_score", POOLS), "{{pool}}: {{server}}")],
            unit="s",
        ),
        w=6,
        h=8,
    )
    grid.add(
        bar_gauge(
            "Failovers in the time range",
            "Changes of each pool's choice in the dashboard's time range, by reason "
            "(jitsi_pool_failovers_total): ineligible (the choice failed), better (a nearer "
            "or preferred member), none_eligible (every member failed).",
            [
                query(
                    "sum by (pool, reason) "
                    f"(increase({sel('jitsi_pool_failovers_total', POOLS)}[$__range]))",
                    "{{pool}}: {{reason}}",
                    instant=True,
                )
            ],
            unit="short",
            defaults={
                "decimals": 0,
                "thresholds": thresholds("green", (1, "orange")),
            },
        ),
        w=24,
        h=6,
    )
    grid.row("Users' view (browser beacons)")
    for panel, width, height in user_panels():
        grid.add(panel, w=width, h=height)
    grid.row("Certificates")
    grid.add(
        bar_gauge(
            "Certificate expiry",
            "Days until the certificate each server presented expires "
            "(jitsi_ssl_earliest_cert_expiry - time()), soonest first. Red under 14 days, "
            "orange under 30. Servers served over plain HTTP have none.",
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
    )

    lay_out(grid, FAMILIES, OVERVIEW_UID, "end")

    grid.row("Monitor health", collapsed=True)
    grid.add(
        timeseries(
            "Schedule lag",
            "How late the last due ladder started (jitsi_monitor_schedule_lag_seconds), "
            "waiting for a free slot included. Growing lag: raise concurrency or intervals.",
            [query(sel("jitsi_monitor_schedule_lag_seconds"), "{{location}}")],
            unit="s",
        ),
        w=6,
        h=8,
    )
    grid.add(
        timeseries(
            "Probe errors",
            "Ladders that failed through the monitor's own fault, per second "
            "(rate of jitsi_monitor_probe_errors_total). Should stay 0: see the monitor's log.",
            [
                query(
                    "sum by (location, check) "
                    f"(rate({sel('jitsi_monitor_probe_errors_total')}[$__rate_interval]))",
                    "{{location}}: {{check}}",
                )
            ],
            unit="cps",
        ),
        w=6,
        h=8,
    )
    grid.add(
        state_timeline(
            "Config reload",
            "Whether the last config (re)load succeeded "
            "(jitsi_monitor_config_last_reload_successful). On FAIL the monitor keeps "
            "running the previous config; its log names the errors.",
            [query(sel("jitsi_monitor_config_last_reload_successful"), "{{location}}")],
            mappings=OK_FAIL,
        ),
        w=6,
        h=8,
    )
    grid.add(
        stat(
            "Config age",
            "Time since the config was last loaded successfully "
            "(jitsi_monitor_config_last_reload_success_timestamp_seconds), and the number "
            "of configured servers (jitsi_monitor_servers).",
            [
                query(
                    f"time() - {sel('jitsi_monitor_config_last_reload_success_timestamp_seconds')}",
                    "{{location}}: config age",
                ),
                query(sel("jitsi_monitor_servers"), "{{location}}: servers"),
            ],
            unit="dtdurations",
            defaults={"color": BLUE},
            overrides=[override("byFrameRefID", "B", {"unit": "short", "decimals": 0})],
        ),
        w=6,
        h=8,
    )
    grid.add(
        timeseries(
            "Monitor memory",
            "Resident memory of each monitor process (process_resident_memory_bytes). "
            "About 190 MB for 10,000 servers (bench/RESULTS.md); steady growth over days "
            "is a leak worth reporting.",
            [query(vital(f"process_resident_memory_bytes{{{JOB}}}"), "{{location}} {{instance}}")],
            unit="bytes",
        ),
        w=6,
        h=8,
    )
    grid.add(
        timeseries(
            "Monitor CPU",
            "CPU time of each monitor process per second (rate of process_cpu_seconds_total): "
            "1 is one core. One process runs on one core: near 1, due ladders start late "
            "(see schedule lag); shard the fleet.",
            [
                query(
                    vital(f"rate(process_cpu_seconds_total{{{JOB}}}[$__rate_interval])"),
                    "{{location}} {{instance}}",
                )
            ],
            unit="percentunit",
        ),
        w=6,
        h=8,
    )
    grid.add(
        timeseries(
            "Monitor open files",
            "Open file descriptors of each monitor process (process_open_fds; every probe "
            "in flight holds a socket or two) and its limit (process_max_fds). Above 80 % "
            "of the limit for 5 minutes: JitsiMonitorFileDescriptorsNearLimit.",
            [
                query(vital(f"process_open_fds{{{JOB}}}"), "{{location}} {{instance}}: open"),
                query(vital(f"process_max_fds{{{JOB}}}"), "{{location}} {{instance}}: limit"),
            ],
            unit="short",
            overrides=[
                override(
                    "byFrameRefID",
                    "B",
                    {"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}},
                )
            ],
        ),
        w=6,
        h=8,
    )
    grid.add(
        timeseries(
            "Monitor garbage collections",
            "Full garbage collections per minute (python_gc_collections_total, generation "
            "2): each pauses the monitor, in a large fleet for a tenth of a second or more.",
            [
                query(
                    vital(
                        f'increase(python_gc_collections_total{{{JOB}, generation="2"}}[5m]) / 5'
                    ),
                    "{{location}} {{instance}}",
                )
            ],
            unit="short",
        ),
        w=6,
        h=8,
    )

    return dashboard(
        OVERVIEW_UID,
        "Jitsi: overview",
        "Health of every Jitsi server jitsi-monitor probes, its pools and the monitor itself.",
        grid,
        variables=[
            *common_variables(),
            query_variable(
                "server", "Server", f"label_values(jitsi_server_info{{{SCOPE}}}, server)"
            ),
        ],
        annotations=[
            annotation(
                "Pool failovers",
                "sum by (location, pool, reason) "
                f"(changes({sel('jitsi_pool_failovers_total', POOLS)}[2m])) > 0",
                "Failover in pool {{pool}}",
                "reason: {{reason}} (location {{location}})",
                "pool,reason",
                "orange",
            ),
            annotation(
                "New pool choice",
                f"({sel('jitsi_pool_selected', POOLS)} == 1) and on (location, pool, server) "
                f"(changes({sel('jitsi_pool_selected', POOLS)}[2m]) > 0)",
                "Pool {{pool}} chose {{server}}",
                "location {{location}}",
                "pool,server",
                "blue",
            ),
        ],
        link=dashboard_link(
            "Server drill-down",
            SERVER_UID,
            "jitsi-server",
            "One server's ladder, checks, reasons and tokens",
        ),
        time_from="now-6h",
    )


# -- the per-server drill-down ---------------------------------------------------------


def server_phase_queries(metric: str, phases: tuple[str, ...], *, instant: bool) -> list[Json]:
    return [query(sel(metric, ONE_SERVER, f'phase="{p}"'), p, instant=instant) for p in phases]


def server_dashboard() -> Json:
    grid = Grid()

    grid.row("Now")
    summary: list[tuple[Json, int]] = [
        (
            stat(
                "Verdict",
                "OK when every check that decides the verdict passed in the last ladder "
                "(jitsi_server_up).",
                [query(sel("jitsi_server_up", ONE_SERVER), "{{location}}")],
                unit="none",
                defaults={"mappings": OK_FAIL, "noValue": "not probed yet"},
            ),
            3,
        ),
        (
            stat(
                "HTTP status",
                "Status of GET / after redirects (jitsi_http_status_code).",
                [query(sel("jitsi_http_status_code", ONE_SERVER), "{{location}}")],
                unit="none",
                defaults={
                    "thresholds": thresholds("red", (200, "green"), (300, "orange"), (400, "red"))
                },
            ),
            3,
        ),
        (
            stat(
                "TLS version",
                "TLS version negotiated on the ladder's first connection "
                "(the version label of jitsi_tls_version_info).",
                [query(sel("jitsi_tls_version_info", ONE_SERVER), table=True)],
                unit="none",
                fields="/^version$/",
                defaults={"noValue": "no TLS", "color": BLUE},
            ),
            3,
        ),
        (
            stat(
                "Certificate",
                "Days until the certificate the server presented expires "
                "(jitsi_ssl_earliest_cert_expiry - time()).",
                [query(cert_days(ONE_SERVER), "{{location}}")],
                unit=DAYS,
                defaults={"decimals": 0, "noValue": "no TLS", "thresholds": CERT_THRESHOLDS},
            ),
            3,
        ),
        (
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
            3,
        ),
        (
            stat(
                "Last probe",
                "How long ago the last ladder finished "
                "(time() - jitsi_last_probe_timestamp_seconds). Much more than the server's "
                "interval means the monitor is behind or stopped.",
                [
                    query(
                        f"time() - {sel('jitsi_last_probe_timestamp_seconds', ONE_SERVER)}",
                        "{{location}}",
                    )
                ],
                unit="s",
                defaults={"decimals": 0, "color": BLUE},
            ),
            3,
        ),
        (
            stat(
                "Probe duration",
                "How long the last ladder took (jitsi_probe_duration_seconds).",
                [query(sel("jitsi_probe_duration_seconds", ONE_SERVER), "{{location}}")],
                unit="s",
                defaults={"color": BLUE},
            ),
            3,
        ),
        (
            stat(
                "Signalling round trip",
                "Smoothed XMPP ping round trip (jitsi_rtt_seconds, method xmpp_ping).",
                [
                    query(
                        sel("jitsi_rtt_seconds", ONE_SERVER, 'method="xmpp_ping"'),
                        "{{location}}",
                    )
                ],
                unit="s",
                defaults={"color": BLUE},
            ),
            3,
        ),
    ]
    for item, width in summary:
        grid.add(item, w=width, h=4)

    grid.row("Probe ladder")
    grid.add(
        timeseries(
            "HTTP phases",
            "Phases of the GET of the server's page, stacked in ladder order "
            "(jitsi_http_duration_seconds): resolve, connect, tls, processing (request to "
            "first byte), transfer (first byte to end of body), summed over redirects.",
            server_phase_queries("jitsi_http_duration_seconds", HTTP_PHASES, instant=False),
            unit="s",
            stacked=True,
        ),
        w=12,
        h=9,
    )
    grid.add(
        timeseries(
            "XMPP phases",
            "Steps of the signalling ladder, stacked in ladder order "
            "(jitsi_xmpp_duration_seconds): upgrade, open, auth, bind, ping, focus, join, "
            "settle (servers with jwt) and leave.",
            server_phase_queries("jitsi_xmpp_duration_seconds", XMPP_PHASES, instant=False),
            unit="s",
            stacked=True,
        ),
        w=12,
        h=9,
    )
    grid.add(
        bar_gauge(
            "HTTP phases, last ladder",
            "The HTTP phases of the last ladder, in ladder order "
            "(jitsi_http_duration_seconds). tls is absent for http:// servers.",
            server_phase_queries("jitsi_http_duration_seconds", HTTP_PHASES, instant=True),
            unit="s",
            defaults={"color": {"mode": "continuous-GrYlRd"}},
        ),
        w=12,
        h=8,
    )
    grid.add(
        bar_gauge(
            "XMPP phases, last ladder",
            "The signalling steps of the last ladder, in ladder order "
            "(jitsi_xmpp_duration_seconds). Steps after a failure are absent.",
            server_phase_queries("jitsi_xmpp_duration_seconds", XMPP_PHASES, instant=True),
            unit="s",
            defaults={"color": {"mode": "continuous-GrYlRd"}},
        ),
        w=12,
        h=8,
    )

    grid.row("Checks")
    grid.add(
        state_timeline(
            "Check results",
            "Each check's result over time (jitsi_check_success), in ladder order. A check "
            "that is not run (no jwt block, signalling turned off) has no row. embed, "
            "jwt_enforced and moderation do not decide the verdict.",
            [query(sel("jitsi_check_success", ONE_SERVER, f'check="{c}"'), c) for c, _ in CHECKS],
            mappings=OK_FAIL,
        ),
        w=24,
        h=9,
    )
    grid.add(
        state_timeline(
            "Failure reasons",
            "Why a check did not pass, over time (jitsi_check_reason_info with reason "
            'other than "ok"): one row per check and reason code, e.g. dns_error, '
            "connect_refused, tls_expired, focus_unavailable, jwt_not_enforced. skipped "
            "(grey) means an earlier check failed to reach the server. docs/checks.md lists "
            "every reason code.",
            [
                query(
                    sel("jitsi_check_reason_info", ONE_SERVER, 'reason!="ok"'),
                    "{{check}}: {{reason}}",
                )
            ],
            mappings=value_map((1, "failing", "red")),
            overrides=[
                override(
                    "byRegexp", "/: skipped$/", {"mappings": value_map((1, "skipped", "#8e8e8e"))}
                )
            ],
        ),
        w=14,
        h=9,
    )
    grid.add(
        table(
            "Current failures",
            "The checks that did not pass in the last ladder and their reason codes "
            '(jitsi_check_reason_info{reason!="ok"}). Empty when every check passes.',
            [query(sel("jitsi_check_reason_info", ONE_SERVER, 'reason!="ok"'), table=True)],
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value": True, "__name__": True},
                        "indexByName": {"check": 0, "reason": 1, "location": 2, "server": 3},
                        "renameByName": {},
                    },
                }
            ],
            sort_by="check",
            defaults={"noValue": "every check passes"},
        ),
        w=10,
        h=9,
    )

    lay_out(grid, FAMILIES, SERVER_UID, "steps")

    grid.row("Web and TLS")
    grid.add(
        state_timeline(
            "HTTP status code",
            "Status of GET / after redirects over time (jitsi_http_status_code).",
            [query(sel("jitsi_http_status_code", ONE_SERVER), "status")],
            defaults={
                "thresholds": thresholds("red", (200, "green"), (300, "orange"), (400, "red"))
            },
        ),
        w=6,
        h=7,
    )
    grid.add(
        state_timeline(
            "TLS version",
            "TLS version negotiated over time (jitsi_tls_version_info): one row per version.",
            [query(sel("jitsi_tls_version_info", ONE_SERVER), "{{version}}")],
            mappings=value_map((1, "in use", "blue")),
        ),
        w=6,
        h=7,
    )
    grid.add(
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
    )
    grid.add(
        timeseries(
            "Last probe age",
            "Seconds since the last ladder finished "
            "(time() - jitsi_last_probe_timestamp_seconds): a saw-tooth up to the server's "
            "interval; a ramp means the monitor stopped probing it.",
            [
                query(
                    f"time() - {sel('jitsi_last_probe_timestamp_seconds', ONE_SERVER)}",
                    "{{location}}",
                )
            ],
            unit="s",
        ),
        w=6,
        h=7,
    )

    grid.row("Round trip and pools")
    grid.add(
        timeseries(
            "Round trip",
            "Smoothed (EWMA) round trips (jitsi_rtt_seconds): xmpp_ping (the signalling "
            "ping) and tcp_connect (the first TCP connect).",
            [query(sel("jitsi_rtt_seconds", ONE_SERVER), "{{method}}")],
            unit="s",
        ),
        w=8,
        h=8,
    )
    grid.add(
        state_timeline(
            "Pool membership",
            "For each pool in $pool that has this server: chosen when the pool sends people "
            "here, standby when another member is chosen (jitsi_pool_selected).",
            [query(sel("jitsi_pool_selected", POOLS, ONE_SERVER), "{{pool}}")],
            mappings=value_map((1, "chosen", "green"), (0, "standby", "blue")),
        ),
        w=8,
        h=8,
    )
    grid.add(
        timeseries(
            "Pool score",
            "The score each pool's selector gave this server "
            "(jitsi_pool_server_score); lower is better.",
            [query(sel("jitsi_pool_server_score", POOLS, ONE_SERVER), "{{pool}}")],
            unit="s",
        ),
        w=8,
        h=8,
    )

    lay_out(grid, FAMILIES, SERVER_UID, "end")

    return dashboard(
        SERVER_UID,
        "Jitsi: server",
        "One Jitsi server in detail: its probe ladder phase by phase, each check and why "
        "it failed, the token matrix, HTTP and TLS, and its pools. Where several monitors "
        "(locations) probe the server, pick one location to keep the stacked phases apart.",
        grid,
        variables=[
            *common_variables(),
            query_variable(
                "server",
                "Server",
                f"label_values(jitsi_server_info{{{SCOPE}}}, server)",
                multi=False,
            ),
        ],
        annotations=[
            annotation(
                "Verdict changes",
                f"changes({sel('jitsi_server_up', ONE_SERVER)}[2m]) > 0",
                "{{server}}: verdict changed",
                "location {{location}}",
                "server",
                "red",
            ),
            annotation(
                "Pool choice changes",
                f"changes({sel('jitsi_pool_selected', POOLS, ONE_SERVER)}[2m]) > 0",
                "Pool {{pool}}: choice changed to or from {{server}}",
                "location {{location}}",
                "pool,server",
                "orange",
            ),
        ],
        link=dashboard_link(
            "Overview", OVERVIEW_UID, "jitsi-overview", "Every server, pool and the monitor"
        ),
        time_from="now-3h",
    )


# -- output ----------------------------------------------------------------------------


def render(board: Json) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def outputs(out_dir: Path) -> dict[Path, str]:
    return {
        out_dir / "jitsi-overview.json": render(overview()),
        out_dir / "jitsi-server.json": render(server_dashboard()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files differ from the generated ones"
    )
    parser.add_argument("--dir", type=Path, default=OUT_DIR, help="where the JSON files are")
    args = parser.parse_args(argv)

    stale = []
    for path, text in outputs(args.dir).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        for path in stale:
            print(f"{path} is not what scripts/dashboards.py writes", file=sys.stderr)
        print("run: python scripts/dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
