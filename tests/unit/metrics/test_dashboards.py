"""The Grafana dashboards: generated, conventional, valid PromQL, real metric names."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from monitor.checks import LADDER
from tests.support.dashboards import (
    BOARDS,
    BUILTIN_VALUES,
    GRAFANA,
    Json,
    all_panels,
    data_panels,
    load,
    metric_names,
    promql_expressions,
    variable_query,
    variables_used,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
LOCATION_FILTER = 'location=~"$location"'
JOB_FILTER = 'job=~"$job"'


# -- helpers (also for other tests: the alert rules' expressions) -----------------


# -- 1. the committed JSON is the generator's output -------------------------------


def test_output_is_stable_json() -> None:
    for name in BOARDS:
        text = (GRAFANA / f"{name}.json").read_text()
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", name


# -- 2. conventions ----------------------------------------------------------------


@pytest.mark.parametrize("name", BOARDS)
def test_datasource_is_a_variable(name: str) -> None:
    board = load(name)
    text = (GRAFANA / f"{name}.json").read_text()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert "datasource" in variables, f"{name}: no datasource variable"
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "__inputs" not in board, f"{name}: __inputs (an export for sharing) is not wanted"
    assert "${DS_" not in text, f"{name}: a ${{DS_...}} placeholder"

    for panel in all_panels(board):
        assert panel.get("datasource") == DATASOURCE, (
            f'{name}: panel "{panel["title"]}" has datasource {panel.get("datasource")}'
        )
        for target in panel.get("targets", []):
            assert target.get("datasource") == DATASOURCE, (
                f'{name}: panel "{panel["title"]}" query {target.get("refId")} has datasource '
                f"{target.get('datasource')}"
            )
    for annotation in board["annotations"]["list"]:
        assert annotation.get("datasource") == DATASOURCE, (
            f'{name}: annotation "{annotation["name"]}" has datasource '
            f"{annotation.get('datasource')}"
        )


@pytest.mark.parametrize("name", BOARDS)
def test_every_panel_has_a_unit_and_a_description(name: str) -> None:
    for panel in data_panels(load(name)):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert isinstance(unit, str), f'{name}: panel "{panel["title"]}" has no unit'
        assert unit, f'{name}: panel "{panel["title"]}" has an empty unit'
        assert str(panel.get("description", "")).strip(), (
            f'{name}: panel "{panel["title"]}" has no description'
        )


@pytest.mark.parametrize("name", BOARDS)
def test_template_variables(name: str) -> None:
    board = load(name)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    expected = {
        "job": "label_values(jitsi_monitor_build_info, job)",
        "location": 'label_values(jitsi_server_info{job=~"$job"}, location)',
        "pool": 'label_values(jitsi_pool_selected{job=~"$job", location=~"$location"}, pool)',
        "server": 'label_values(jitsi_server_info{job=~"$job", location=~"$location"}, server)',
    }
    for var, query in expected.items():
        assert var in variables, f"{name}: no ${var} variable"
        assert variable_query(variables[var]) == query, f"{name}: ${var} has another query"
        assert variables[var]["datasource"] == DATASOURCE, f"{name}: ${var}'s datasource"
    multi = ["location", "pool", "server"] if name == "jitsi-overview" else ["location", "pool"]
    for var in multi:
        assert variables[var]["multi"], f"{name}: ${var} must be multi-valued"
        assert variables[var]["includeAll"], f"{name}: ${var} must include All"

    builtins = set(BUILTIN_VALUES) | {"__url_time_range", "__value", "__data"}
    for where, expr in promql_expressions(board):
        unknown = variables_used(expr) - set(variables) - builtins
        assert not unknown, f"{where}: undefined variables {sorted(unknown)}: {expr}"


SELECTOR = re.compile(r"\b(jitsi_[a-z0-9_]+)\s*(\{[^}]*\})?")


@pytest.mark.parametrize("name", BOARDS)
def test_every_selector_filters_by_location(name: str) -> None:
    for where, expr in promql_expressions(load(name)):
        if where.endswith("variable $job"):
            continue  # the list of jobs itself
        for match in SELECTOR.finditer(expr):
            if not where.endswith("variable $location"):
                assert LOCATION_FILTER in (match[2] or ""), (
                    f"{where}: {match[1]} is not filtered by {LOCATION_FILTER}: {expr}"
                )
            assert JOB_FILTER in (match[2] or ""), (
                f"{where}: {match[1]} is not filtered by {JOB_FILTER}: {expr}"
            )


@pytest.mark.parametrize("name", BOARDS)
def test_rates_use_rate_interval(name: str) -> None:
    for where, expr in promql_expressions(load(name)):
        for match in re.finditer(r"\b(i?rate)\((?:[^\[]*)\[([^\]]*)\]", expr):
            assert match[2] == "$__rate_interval", (
                f"{where}: {match[1]}(...[{match[2]}]) should use [$__rate_interval]: {expr}"
            )


@pytest.mark.parametrize(("name", "other"), [BOARDS, BOARDS[::-1]])
def test_uid_tags_and_links(name: str, other: str) -> None:
    board = load(name)
    assert board["uid"] == name
    assert board["tags"] == ["jitsi"]
    assert 36 <= board["schemaVersion"] <= 41, "Grafana 10/11 dashboards"
    urls = [link.get("url", "") for link in board["links"]]
    assert any(f"/d/{other}" in url for url in urls), f"{name}: no link to {other}: {urls}"


def fleet_table() -> Json:
    tables = [p for p in data_panels(load("jitsi-overview")) if p["title"] == "Fleet"]
    assert len(tables) == 1, "the overview has one Fleet table"
    return tables[0]


def test_fleet_table() -> None:
    table = fleet_table()
    assert table["type"] == "table"
    for target in table["targets"]:
        assert target["instant"], f'panel "Fleet" query {target["refId"]} is not instant'
        assert target["format"] == "table", f'panel "Fleet" query {target["refId"]} not a table'
    assert [t["id"] for t in table["transformations"]] == ["merge", "organize"]
    exprs = " ".join(t["expr"] for t in table["targets"])
    for check in LADDER.checks():
        assert f'check="{check.value}"' in exprs, f'panel "Fleet" has no column for {check.value}'
    for metric in ("jitsi_server_up", "jitsi_rtt_seconds", "jitsi_ssl_earliest_cert_expiry"):
        assert metric in exprs, f'panel "Fleet" does not show {metric}'
    assert "jitsi_embed_limit_seconds" in exprs

    overrides = json.dumps(table["fieldConfig"]["overrides"])
    assert '"text": "OK"' in overrides, 'panel "Fleet": no value mapping to OK'
    assert '"text": "FAIL"' in overrides, 'panel "Fleet": no value mapping to FAIL'
    links = [
        link["url"]
        for o in table["fieldConfig"]["overrides"]
        for prop in o["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert any("/d/jitsi-server" in u and "var-server=${__value.raw}" in u for u in links), (
        f'panel "Fleet": no data link to the drill-down with var-server: {links}'
    )


# What each dashboard must show (the brief of the dashboards).
SHOWN = {
    "jitsi-overview": {
        "jitsi_server_up",
        "jitsi_check_success",
        "jitsi_rtt_seconds",
        "jitsi_ssl_earliest_cert_expiry",
        "jitsi_embed_limit_seconds",
        "jitsi_jwt_case_success",
        "jitsi_probe_duration_seconds",
        "jitsi_http_duration_seconds",
        "jitsi_xmpp_duration_seconds",
        "jitsi_pool_selected",
        "jitsi_pool_eligible_servers",
        "jitsi_pool_failovers_total",
        "jitsi_monitor_schedule_lag_seconds",
        "jitsi_monitor_probe_errors_total",
        "jitsi_monitor_config_last_reload_successful",
    },
    "jitsi-server": {
        "jitsi_http_duration_seconds",
        "jitsi_xmpp_duration_seconds",
        "jitsi_check_success",
        "jitsi_check_reason_info",
        "jitsi_jwt_case_success",
        "jitsi_jwt_case_age_seconds",
        "jitsi_http_status_code",
        "jitsi_tls_version_info",
        "jitsi_ssl_earliest_cert_expiry",
        "jitsi_last_probe_timestamp_seconds",
    },
}


@pytest.mark.parametrize("name", BOARDS)
def test_dashboard_shows_what_it_should(name: str) -> None:
    board = load(name)
    used = set().union(*(metric_names(expr) for _, expr in promql_expressions(board)))
    assert not SHOWN[name] - used, f"{name} does not show {sorted(SHOWN[name] - used)}"
    kinds = {p["type"] for p in data_panels(board)}
    assert {"state-timeline", "bargauge", "timeseries"} <= kinds
    if name == "jitsi-server":
        reasons = [e for _, e in promql_expressions(board) if "jitsi_check_reason_info" in e]
        assert reasons, "the drill-down does not show failure reasons"
        assert all('reason!="ok"' in e for e in reasons), f'not filtered to reason!="ok": {reasons}'
    else:
        (annotation,) = [
            a for a in board["annotations"]["list"] if "jitsi_pool_failovers_total" in a["expr"]
        ]
        assert annotation["enable"]


@pytest.mark.parametrize("name", BOARDS)
def test_layout(name: str) -> None:
    board = load(name)
    ids = [p["id"] for p in all_panels(board)]
    assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"

    def check(panels: list[Json]) -> None:
        taken: dict[tuple[int, int], str] = {}
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f'{name}: panel "{panel["title"]}" is too wide'
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in taken, (
                        f'{name}: panels "{panel["title"]}" and "{taken[x, y]}" overlap'
                    )
                    taken[x, y] = panel["title"]

    check(board["panels"])
    for row in board["panels"]:
        if row["type"] == "row" and row["panels"]:
            check(row["panels"])


def test_provisioning() -> None:
    provisioning = GRAFANA / "provisioning"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "jitsi-monitor.yaml").read_text())
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Jitsi"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/jitsi"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://localhost:9090")


# -- 3. the PromQL is valid ----------------------------------------------------------


# -- 4. every metric is one the monitor exports ---------------------------------------
