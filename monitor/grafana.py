"""Building blocks of the Grafana dashboards: queries, panels, the grid, the frame.

Plain functions returning JSON-ready dicts, standard library only. The
generator (``scripts/dashboards.py``) lays the dashboards out with them, and
each check family builds its own panels with them
(``monitor.checks.<family>.panels``).
"""

from __future__ import annotations

import string
from typing import Any

__all__ = [
    "BLUE",
    "CERT_THRESHOLDS",
    "DATASOURCE",
    "DAYS",
    "JOB",
    "LEGEND_TABLE",
    "LOCATION",
    "OK_FAIL",
    "ONE_SERVER",
    "OVERVIEW_UID",
    "POOLS",
    "SCHEMA_VERSION",
    "SCOPE",
    "SERVERS",
    "SERVER_UID",
    "TOOLTIP",
    "Grid",
    "Json",
    "across",
    "annotation",
    "bar_gauge",
    "cert_days",
    "common_variables",
    "dashboard",
    "dashboard_link",
    "datasource_variable",
    "override",
    "panel",
    "per_server",
    "query",
    "query_variable",
    "reduce_options",
    "sel",
    "stat",
    "state_timeline",
    "table",
    "thresholds",
    "timeseries",
    "value_map",
    "vital",
]

Json = dict[str, Any]

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
# A fleet-table column of OK and FAIL: a coloured, centred cell.
OK_FAIL_CELL: Json = {
    "custom.cellOptions": {"mode": "basic", "type": "color-background"},
    "custom.align": "center",
    "mappings": OK_FAIL,
}
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


def across(aggregation: str, labels: tuple[str, ...], expr: str) -> str:
    """One series per location and ``labels`` out of every instance's: several ``serve``
    (HA: each follower mirrors the leader's pools; without scale-out every instance
    probes every server) would otherwise draw the same line once per instance."""
    return f"{aggregation} by ({', '.join(('location', *labels))}) ({expr})"


def per_server(aggregation: str, expr: str) -> str:
    """One value per (location, server): table queries merge on those two columns."""
    return f"{aggregation} by (location, server) ({expr})"


def phase_queries(metric: str, phases: tuple[str, ...], matchers: tuple[str, ...]) -> list[Json]:
    """One query per phase, averaged over servers, in ladder order (the order they stack in)."""
    queries = []
    for phase in phases:
        selector = sel(metric, *matchers, f'phase="{phase}"')
        queries.append(query(f"avg by (phase) ({selector})", phase))
    return queries


def server_phase_queries(metric: str, phases: tuple[str, ...], *, instant: bool) -> list[Json]:
    """One query per phase of the dashboard's one server, in ladder order."""
    return [query(sel(metric, ONE_SERVER, f'phase="{p}"'), p, instant=instant) for p in phases]
