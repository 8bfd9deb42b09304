#!/usr/bin/env python3
"""Write the Grafana dashboards of jitsi-monitor into dashboards/grafana/.

    python scripts/dashboards.py           # rewrite the JSON files
    python scripts/dashboards.py --check   # exit 1 when they differ from what it would write

The JSON is committed so Grafana can provision it as is; this script is where
it is edited. Standard library only, plus the ladder table (monitor/ladder.py,
itself standard library only) for the checks, phases and token cases; the
output is deterministic (sorted keys, 2-space indent, trailing newline) so a
change reviews as a small diff.

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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the monitor's package, also when it is not installed

from monitor.ladder import HTTP_PHASES, LADDER, XMPP_PHASES, JwtCase  # noqa: E402

Json = dict[str, Any]

OUT_DIR = ROOT / "dashboards" / "grafana"
OVERVIEW_UID = "jitsi-overview"
SERVER_UID = "jitsi-server"
SCHEMA_VERSION = 39
DATASOURCE: Json = {"type": "prometheus", "uid": "${datasource}"}

# Matchers. Every jitsi_* series has `location`; the overview narrows by the
# multi-valued `server` and `pool` variables, the drill-down shows one server.
LOCATION = 'location=~"$location"'
# The monitor's scheduled job(s): those that export jitsi_monitor_build_info. An
# on-demand (/probe) job exports the same server series and would double them.
JOB = 'job=~"$job"'
SCOPE = f"{JOB}, {LOCATION}"
SERVERS = 'server=~"$server"'
ONE_SERVER = 'server="$server"'
POOLS = 'pool=~"$pool"'

# (check label, column title), in the order the ladder runs them; the embed
# verdict last, after the checks that decide up or down.
CHECKS = tuple(
    (r.check.value, r.title) for r in sorted(LADDER, key=lambda r: not (r.verdict or r.require))
)
JWT_CASES = tuple(case.value for case in JwtCase)

DAYS = "suffix:days"  # Grafana's "d" unit turns 45 days into "6.43 week"


def sel(metric: str, *matchers: str) -> str:
    """A selector of ``metric`` narrowed to the chosen locations (and ``matchers``)."""
    return f"{metric}{{{', '.join((JOB, LOCATION, *matchers))}}}"


def vital(expr: str) -> str:
    """A process_* series (no location label of its own) with the monitor's location,
    narrowed to the chosen locations through jitsi_monitor_build_info (always 1)."""
    return f"{expr} * on (instance) group_left (location) {sel('jitsi_monitor_build_info')}"


def cert_days(*matchers: str) -> str:
    """Days until the presented certificate expires."""
    return f"({sel('jitsi_ssl_earliest_cert_expiry', *matchers)} - time()) / 86400"


# -- field config pieces ---------------------------------------------------------


def thresholds(base: str, *steps: tuple[float, str]) -> Json:
    """Absolute thresholds: ``base`` colour below the first step."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": color, "value": value} for value, color in steps],
    }


def value_map(*entries: tuple[float, str, str]) -> list[Json]:
    """A value mapping: each (value, text, colour)."""
    options = {
        f"{value:g}": {"color": color, "index": index, "text": text}
        for index, (value, text, color) in enumerate(entries)
    }
    return [{"options": options, "type": "value"}]


BLUE: Json = {"fixedColor": "blue", "mode": "fixed"}  # for values that are neither good nor bad
OK_FAIL = value_map((1, "OK", "green"), (0, "FAIL", "red"))
# The alert rules warn at 21 days and page at 3.
CERT_THRESHOLDS = thresholds("red", (3, "orange"), (21, "green"))


def override(matcher: str, name: str, properties: Json) -> Json:
    """A field override: ``matcher`` (byName, byRegexp, byFrameRefID) picks the fields."""
    return {
        "matcher": {"id": matcher, "options": name},
        "properties": [{"id": key, "value": value} for key, value in properties.items()],
    }


# -- queries and panels ----------------------------------------------------------


def query(expr: str, legend: str = "", *, instant: bool = False, table: bool = False) -> Json:
    """A Prometheus query; the refId is set by the panel that holds it."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant or table,
        "legendFormat": legend or "__auto",
        "range": not (instant or table),
    }


def panel(
    kind: str,
    title: str,
    description: str,
    queries: list[Json],
    *,
    unit: str,
    options: Json,
    custom: Json | None = None,
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
    **extra: Any,
) -> Json:
    """A panel of type ``kind``; ``defaults`` adds to fieldConfig.defaults."""
    assert len(queries) <= len(string.ascii_uppercase), title
    targets = [{**q, "refId": ref} for ref, q in zip(string.ascii_uppercase, queries, strict=False)]
    field_defaults: Json = {
        "color": {"mode": "thresholds"},
        "mappings": [],
        "thresholds": thresholds("green"),
        "unit": unit,
        **(defaults or {}),
    }
    if custom is not None:
        field_defaults["custom"] = custom
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options,
        "targets": targets,
        "title": title,
        "type": kind,
        **extra,
    }


LEGEND_TABLE: Json = {
    "calcs": ["mean", "max", "lastNotNull"],
    "displayMode": "table",
    "placement": "bottom",
    "showLegend": True,
}
TOOLTIP: Json = {"mode": "multi", "sort": "desc"}


def timeseries(
    title: str,
    description: str,
    queries: list[Json],
    *,
    unit: str,
    stacked: bool = False,
    bars: bool = False,
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
) -> Json:
    custom = {
        "axisSoftMin": 0,
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if stacked or bars else 10,
        "lineInterpolation": "stepAfter",
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
    }
    return panel(
        "timeseries",
        title,
        description,
        queries,
        unit=unit,
        custom=custom,
        defaults={"color": {"mode": "palette-classic"}, **(defaults or {})},
        overrides=overrides,
        options={"legend": LEGEND_TABLE, "tooltip": TOOLTIP},
    )


def state_timeline(
    title: str,
    description: str,
    queries: list[Json],
    *,
    unit: str = "none",
    mappings: list[Json] | None = None,
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
) -> Json:
    return panel(
        "state-timeline",
        title,
        description,
        queries,
        unit=unit,
        custom={"fillOpacity": 80, "lineWidth": 0},
        defaults={"mappings": mappings or [], **(defaults or {})},
        overrides=overrides,
        options={
            "alignValue": "left",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "mergeValues": True,
            "rowHeight": 0.85,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )


def reduce_options(fields: str = "", *, values: bool = False) -> Json:
    return {"calcs": ["lastNotNull"], "fields": fields, "values": values}


def bar_gauge(
    title: str,
    description: str,
    queries: list[Json],
    *,
    unit: str,
    defaults: Json | None = None,
) -> Json:
    return panel(
        "bargauge",
        title,
        description,
        queries,
        unit=unit,
        defaults={"min": 0, **(defaults or {})},
        options={
            "displayMode": "gradient",
            "maxVizHeight": 300,
            "minVizHeight": 16,
            "minVizWidth": 8,
            "namePlacement": "auto",
            "orientation": "horizontal",
            "reduceOptions": reduce_options(),
            "showUnfilled": True,
            "sizing": "auto",
            "valueMode": "color",
        },
    )


def stat(
    title: str,
    description: str,
    queries: list[Json],
    *,
    unit: str,
    fields: str = "",
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
) -> Json:
    """A stat; ``fields`` (a regex) shows a label's text instead of the value."""
    return panel(
        "stat",
        title,
        description,
        queries,
        unit=unit,
        defaults=defaults,
        overrides=overrides,
        options={
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce_options(fields, values=bool(fields)),
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        },
    )


def table(
    title: str,
    description: str,
    queries: list[Json],
    *,
    unit: str = "none",
    overrides: list[Json] | None = None,
    transformations: list[Json],
    sort_by: str | None = None,
    defaults: Json | None = None,
) -> Json:
    return panel(
        "table",
        title,
        description,
        queries,
        unit=unit,
        custom={"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True},
        defaults=defaults,
        overrides=overrides,
        options={
            "cellHeight": "sm",
            "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
            "showHeader": True,
            "sortBy": [{"desc": False, "displayName": sort_by}] if sort_by else [],
        },
        transformations=transformations,
    )


class Grid:
    """Lays panels out left to right, top to bottom on Grafana's 24-column grid."""

    WIDTH = 24

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._ids = 0
        self._x = self._y = self._line_height = 0
        self._collapsed: Json | None = None  # a collapsed row holds its own panels

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _new_line(self) -> None:
        self._y += self._line_height
        self._x = self._line_height = 0

    def row(self, title: str, *, collapsed: bool = False) -> None:
        self._new_line()
        if self._collapsed is not None:  # its panels take no room on the dashboard
            self._y = self._collapsed["gridPos"]["y"] + 1
        row: Json = {
            "collapsed": collapsed,
            "datasource": DATASOURCE,
            "gridPos": {"h": 1, "w": self.WIDTH, "x": 0, "y": self._y},
            "id": self._next_id(),
            "panels": [],
            "title": title,
            "type": "row",
        }
        self.panels.append(row)
        self._collapsed = row if collapsed else None
        self._y += 1

    def add(self, panel: Json, *, w: int, h: int) -> None:
        if self._x + w > self.WIDTH:
            self._new_line()
        panel["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        panel["id"] = self._next_id()
        (self._collapsed["panels"] if self._collapsed else self.panels).append(panel)
        self._x += w
        self._line_height = max(self._line_height, h)


# -- dashboard frame -----------------------------------------------------------------


def datasource_variable() -> Json:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(
    name: str, label: str, definition: str, *, multi: bool = True, all_value: str | None = ".*"
) -> Json:
    """A variable from ``label_values(...)``; multi ones include All (``.*`` unless told)."""
    variable: Json = {
        "current": {},
        "datasource": DATASOURCE,
        "definition": definition,
        "hide": 0,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {
            "qryType": 1,
            "query": definition,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if multi and all_value is not None:
        variable["allValue"] = all_value
    return variable


def common_variables() -> list[Json]:
    return [
        datasource_variable(),
        # All means every listed job, never ".*": that would take in /probe jobs too.
        query_variable("job", "Job", "label_values(jitsi_monitor_build_info, job)", all_value=None),
        query_variable(
            "location", "Location", f"label_values(jitsi_server_info{{{JOB}}}, location)"
        ),
        query_variable("pool", "Pool", f"label_values(jitsi_pool_selected{{{SCOPE}}}, pool)"),
    ]


def annotation(name: str, expr: str, title: str, text: str, tags: str, colour: str) -> Json:
    """Events from a Prometheus query: each step where ``expr`` has a value."""
    return {
        "datasource": DATASOURCE,
        "enable": True,
        "expr": expr,
        "hide": False,
        "iconColor": colour,
        "name": name,
        "step": "1m",
        "tagKeys": tags,
        "textFormat": text,
        "titleFormat": title,
        "useValueForTime": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    grid: Grid,
    *,
    variables: list[Json],
    annotations: list[Json],
    link: Json,
    time_from: str,
) -> Json:
    return {
        "annotations": {"list": annotations},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [link],
        "liveNow": False,
        "panels": grid.panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["jitsi"],
        "templating": {"list": variables},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def dashboard_link(title: str, uid: str, slug: str, tooltip: str) -> Json:
    """A link in the dashboard's header that keeps the time range and variables."""
    return {
        "asDropdown": False,
        "icon": "dashboard",
        "includeVars": True,
        "keepTime": True,
        "tags": [],
        "targetBlank": False,
        "title": title,
        "tooltip": tooltip,
        "type": "link",
        "url": f"/d/{uid}/{slug}",
    }


# -- the overview --------------------------------------------------------------------


def per_server(aggregation: str, expr: str) -> str:
    """One value per (location, server): table queries merge on those two columns."""
    return f"{aggregation} by (location, server) ({expr})"


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

    grid.row("Media path")
    grid.add(
        state_timeline(
            "TURN",
            "Per server: OK when every TURN service it announces allocated over every "
            "transport in the last media run, FAIL when one did not "
            "(min of jitsi_media_check_success for turn and turns). Empty: no TURN "
            "announced, or media not checked. Runs every media.interval, carried between.",
            [
                query(
                    per_server("min", sel("jitsi_media_check_success", SERVERS, 'type=~"turns?"')),
                    "{{server}}",
                )
            ],
            mappings=OK_FAIL,
        ),
        w=12,
        h=7,
    )
    grid.add(
        timeseries(
            "TURN allocation",
            "How long the slowest TURN Allocate of each server took with the announced "
            "credentials, the 401 challenge included (jitsi_turn_allocate_seconds).",
            [
                query(
                    per_server("max", sel("jitsi_turn_allocate_seconds", SERVERS)),
                    "{{server}}",
                )
            ],
            unit="s",
        ),
        w=12,
        h=7,
    )

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

    grid.row("Tokens (JWT)")
    grid.add(
        state_timeline(
            "JWT matrix",
            "Each case of the token check matrix (jitsi_jwt_case_success): OK when the "
            "server treated the token as it must (a valid token logs in; bad signature, "
            "expired and another room's token are refused; a client without a token is kept "
            "out, unless jwt.guests is allowed: no_token failing is jwt_optional; "
            "moderator_false does not make a moderator, moderator_true does). All but valid "
            "run every jwt.matrix_interval and are carried in between. Empty without a jwt "
            "block.",
            [query(sel("jitsi_jwt_case_success", ONE_SERVER, f'case="{c}"'), c) for c in JWT_CASES],
            mappings=OK_FAIL,
        ),
        w=16,
        h=8,
    )
    grid.add(
        timeseries(
            "JWT case age",
            "How old each token case's verdict was at the server's last report "
            "(jitsi_jwt_case_age_seconds): 0 for the valid token, which runs every round; "
            "the others climb until the matrix runs again (jwt.matrix_interval).",
            [
                query(sel("jitsi_jwt_case_age_seconds", ONE_SERVER, f'case="{c}"'), c)
                for c in JWT_CASES
            ],
            unit="s",
        ),
        w=8,
        h=8,
    )

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

    grid.row("Media path")
    media_services = 'type=~"stun|turns?"'
    grid.add(
        state_timeline(
            "STUN and TURN services",
            "Each service the server announces (XEP-0215) or config.js names, per "
            "transport: OK when it answered the Binding (STUN) or allocated and released "
            "(TURN) in the last media run (jitsi_media_check_success).",
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
    )
    grid.add(
        timeseries(
            "STUN round trip and TURN allocation",
            "The Binding's round trip per STUN service (jitsi_stun_rtt_seconds) and the "
            "Allocate per TURN service and transport, 401 challenge included "
            "(jitsi_turn_allocate_seconds).",
            [
                query(sel("jitsi_stun_rtt_seconds", ONE_SERVER), "{{service}} {{transport}}"),
                query(sel("jitsi_turn_allocate_seconds", ONE_SERVER), "{{service}} {{transport}}"),
            ],
            unit="s",
        ),
        w=8,
        h=8,
    )
    grid.add(
        stat(
            "TURN credentials valid for",
            "How long the TURN credentials the server announced stay valid "
            "(jitsi_turn_credentials_expiry_timestamp_seconds - time()); red once expired.",
            [
                query(
                    f"{sel('jitsi_turn_credentials_expiry_timestamp_seconds', ONE_SERVER)}"
                    " - time()",
                    "{{location}}",
                )
            ],
            unit="s",
            defaults={"thresholds": thresholds("red", (0, "green"))},
        ),
        w=4,
        h=8,
    )

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
