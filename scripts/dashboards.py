#!/usr/bin/env python3
"""Write the Grafana dashboards of jitsi-monitor into dashboards/grafana/.

    python scripts/dashboards.py           # rewrite the JSON files
    python scripts/dashboards.py --check   # exit 1 when they differ from what it would write

The JSON is committed so Grafana can provision it as is; this script is where
it is edited. It needs the monitor's package (run it with the project's venv):
the panel builders (monitor/grafana.py), the ladder table and the check
families (monitor/checks/). This script lays out what is no one family's
(the verdict, the checks, round trips, pools, the monitor's health) and loops
over FAMILIES for the rest: each family's panels.py
(monitor/checks/<family>/panels.py) gives whole rows at a slot (``lay_out``),
panels at a place inside this script's rows (``place``: the server's summary,
its ladder row, the overview's probe timing) and columns of the fleet table
(``fleet_columns``).
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
from monitor.checks.family import Slot, fleet_columns, lay_out, place  # noqa: E402
from monitor.grafana import (  # noqa: E402
    BLUE,
    JOB,
    OK_FAIL,
    OK_FAIL_CELL,
    ONE_SERVER,
    OVERVIEW_UID,
    POOLS,
    SCOPE,
    SERVER_UID,
    SERVERS,
    Grid,
    Json,
    across,
    annotation,
    bar_gauge,
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
from monitor.moodle.panels import moodle_panels  # noqa: E402

OUT_DIR = ROOT / "dashboards" / "grafana"

# (check label, column title), in the order the ladder runs them; the embed
# verdict last, after the checks that decide up or down.
CHECKS = tuple(
    (r.check.value, r.title) for r in sorted(LADDER, key=lambda r: not (r.verdict or r.require))
)


SECONDS: Json = {"unit": "s", "decimals": 1}  # a fleet-table column of seconds


def family_columns(slot: Slot) -> list[tuple[str, str, Json]]:
    """The fleet-table columns the families add at ``slot``: (title, expr, field config)."""
    return [(c.title, c.expr, c.config) for c in fleet_columns(FAMILIES, OVERVIEW_UID, slot)]


def fleet_table() -> Json:
    columns: list[tuple[str, str, Json]] = [  # (title, expr, field config)
        ("verdict", per_server("max", sel("jitsi_server_up", SERVERS)), OK_FAIL_CELL),
        *(
            (
                title,
                per_server("max", sel("jitsi_check_success", SERVERS, f'check="{check}"')),
                OK_FAIL_CELL,
            )
            for check, title in CHECKS
        ),
        *family_columns("steps"),
        (
            "ping RTT",
            per_server("max", sel("jitsi_rtt_seconds", SERVERS, 'method="xmpp_ping"')),
            SECONDS,
        ),
        (
            "connect RTT",
            per_server("max", sel("jitsi_rtt_seconds", SERVERS, 'method="tcp_connect"')),
            SECONDS,
        ),
        *family_columns("facts"),
        (
            "last probe",
            per_server("max", f"time() - {sel('jitsi_last_probe_timestamp_seconds', SERVERS)}"),
            SECONDS,
        ),
        *family_columns("end"),
    ]
    refs = string.ascii_uppercase
    rename = {f"Value #{refs[i]}": title for i, (title, _, _) in enumerate(columns)}
    order = {"server": 0, "location": 1} | {f"Value #{refs[i]}": i + 2 for i in range(len(columns))}
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
        *(override("byName", title, config) for title, _, config in columns),
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
            [query(per_server("max", sel("jitsi_probe_duration_seconds", SERVERS)), "{{server}}")],
            unit="s",
        ),
        w=8,
        h=9,
    )
    place(grid, FAMILIES, OVERVIEW_UID, "timing")

    grid.row("Round trip")
    grid.add(
        timeseries(
            "Signalling round trip (XMPP ping)",
            "Smoothed (EWMA) XEP-0199 ping round trip (jitsi_rtt_seconds, method xmpp_ping): "
            "what pools use as a member's score.",
            [
                query(
                    per_server("max", sel("jitsi_rtt_seconds", SERVERS, 'method="xmpp_ping"')),
                    "{{server}}",
                )
            ],
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
            [
                query(
                    per_server("max", sel("jitsi_rtt_seconds", SERVERS, 'method="tcp_connect"')),
                    "{{server}}",
                )
            ],
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
                query(
                    f"{across('max', ('pool', 'server'), sel('jitsi_pool_selected', POOLS))} == 1",
                    "{{pool}}: {{server}}",
                ),
                query(
                    f"{across('max', ('pool',), sel('jitsi_pool_stale', POOLS))} == 1",
                    "{{pool}}: none eligible",
                ),
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
            [
                query(
                    across("max", ("pool",), sel("jitsi_pool_eligible_servers", POOLS)), "{{pool}}"
                )
            ],
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
            [
                query(
                    across("max", ("pool", "server"), sel("jitsi_pool_server_score", POOLS)),
                    "{{pool}}: {{server}}",
                )
            ],
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
                    "sum by (pool, reason) ("
                    + across(
                        "max",
                        ("pool", "reason"),
                        f"increase({sel('jitsi_pool_failovers_total', POOLS)}[$__range])",
                    )
                    + ")",
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
    grid.row("Moodle (mod_jitsi)", collapsed=True)
    for panel, width, height in moodle_panels():
        grid.add(panel, w=width, h=height)
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


def server_dashboard() -> Json:
    grid = Grid()

    grid.row("Now")
    grid.add(
        stat(
            "Verdict",
            "OK when every check that decides the verdict passed in the last ladder "
            "(jitsi_server_up).",
            [query(across("min", (), sel("jitsi_server_up", ONE_SERVER)), "{{location}}")],
            unit="none",
            defaults={"mappings": OK_FAIL, "noValue": "not probed yet"},
        ),
        w=3,
        h=4,
    )
    place(grid, FAMILIES, SERVER_UID, "now")
    summary: list[tuple[Json, int]] = [
        (
            stat(
                "Last probe",
                "How long ago the last ladder finished "
                "(time() - jitsi_last_probe_timestamp_seconds). Much more than the server's "
                "interval means the monitor is behind or stopped.",
                [
                    query(
                        "time() - "
                        + across("max", (), sel("jitsi_last_probe_timestamp_seconds", ONE_SERVER)),
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
                [
                    query(
                        across("max", (), sel("jitsi_probe_duration_seconds", ONE_SERVER)),
                        "{{location}}",
                    )
                ],
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
    place(grid, FAMILIES, SERVER_UID, "phases")
    place(grid, FAMILIES, SERVER_UID, "phases.last")

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

    lay_out(grid, FAMILIES, SERVER_UID, "facts")
    # The ladder's own closing panel, after the families' facts (their last row).
    grid.add(
        timeseries(
            "Last probe age",
            "Seconds since the last ladder finished "
            "(time() - jitsi_last_probe_timestamp_seconds): a saw-tooth up to the server's "
            "interval; a ramp means the monitor stopped probing it.",
            [
                query(
                    "time() - "
                    + across("max", (), sel("jitsi_last_probe_timestamp_seconds", ONE_SERVER)),
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
            [query(across("max", ("method",), sel("jitsi_rtt_seconds", ONE_SERVER)), "{{method}}")],
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
            [
                query(
                    across("max", ("pool",), sel("jitsi_pool_selected", POOLS, ONE_SERVER)),
                    "{{pool}}",
                )
            ],
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
            [
                query(
                    across("max", ("pool",), sel("jitsi_pool_server_score", POOLS, ONE_SERVER)),
                    "{{pool}}",
                )
            ],
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
