"""The Grafana dashboards: generated, conventional, valid PromQL, real metric names."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.checks import LADDER
from monitor.lab import LabOptions, LabServer, servers_yaml
from monitor.lab.tokens import TokenPolicy
from tests.conftest import Served, start_serve
from tests.test_cli import scrape

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "dashboards.py"
GRAFANA = ROOT / "dashboards" / "grafana"
BOARDS = ("jitsi-overview", "jitsi-server")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
LOCATION_FILTER = 'location=~"$location"'
JOB_FILTER = 'job=~"$job"'

Json = dict[str, Any]


# -- helpers (also for other tests: the alert rules' expressions) -----------------


def load(name: str) -> Json:
    board: Json = json.loads((GRAFANA / f"{name}.json").read_text())
    return board


def all_panels(board: Json) -> Iterator[Json]:
    """Every panel, rows and the panels nested in (collapsed) rows included."""

    def walk(panels: list[Json]) -> Iterator[Json]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    return walk(board.get("panels", []))


def data_panels(board: Json) -> Iterator[Json]:
    """Panels that show data (rows only lay the others out)."""
    return (p for p in all_panels(board) if p["type"] != "row")


def variable_query(variable: Json) -> str:
    query = variable.get("query", "")
    if isinstance(query, dict):
        query = query.get("query", "")
    return str(query)


LABEL_VALUES = re.compile(r"^\s*label_values\((?P<expr>.*),\s*\w+\s*\)\s*$", re.S)
QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.S)


def promql_expressions(board: Json) -> list[tuple[str, str]]:
    """(where, expr) of every PromQL in a dashboard, Grafana variables left in.

    Panel queries, the selector inside ``label_values(selector, label)`` and
    ``query_result(expr)`` variable queries, and annotation queries.
    """
    title = board["title"]
    found: list[tuple[str, str]] = []
    for panel in data_panels(board):
        for target in panel.get("targets", []):
            if target.get("expr"):
                where = f'{title}: panel "{panel["title"]}" query {target.get("refId")}'
                found.append((where, target["expr"]))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        match = LABEL_VALUES.match(variable_query(variable)) or QUERY_RESULT.match(
            variable_query(variable)
        )
        if match:  # label_values(label) and label_names() have no PromQL to check
            found.append((f"{title}: variable ${variable['name']}", match["expr"]))
    for annotation in board.get("annotations", {}).get("list", []):
        expr = annotation.get("expr") or annotation.get("target", {}).get("expr")
        if expr:
            found.append((f'{title}: annotation "{annotation["name"]}"', expr))
    return found


GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
BUILTIN_VALUES = {
    "__interval": "5m",
    "__rate_interval": "5m",
    "__range": "5m",
    "__interval_ms": "300000",
    "__range_s": "300",
    "__range_ms": "300000",
}


def variables_used(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in GRAFANA_VARIABLE.finditer(text)}


def as_promql(expr: str) -> str:
    """Grafana's variables replaced: durations by 5m, the dashboard's by ``.*``."""

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return BUILTIN_VALUES.get(name, ".*")

    return GRAFANA_VARIABLE.sub(value, expr)


def promtool_check(expressions: list[tuple[str, str]], folder: Path) -> None:
    """Fail with promtool's message unless every expression parses as PromQL."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/check installs it (Debian package prometheus)"
    rules = [
        {"record": f"dash:expr_{i}", "expr": as_promql(expr)}
        for i, (_, expr) in enumerate(expressions)
    ]
    path = folder / "expressions.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dash", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    origins = "\n".join(
        f"  dash:expr_{i}: {where}: {rule['expr']}"
        for i, ((where, _), rule) in enumerate(zip(expressions, rules, strict=True))
    )
    assert checked.returncode == 0, (
        f"promtool check rules:\n{checked.stdout}{checked.stderr}\nthe rules come from:\n{origins}"
    )


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bjitsi_[a-z0-9_]+", expr))


def sample_names(exposition: str) -> set[str]:
    """The sample names of a Prometheus text exposition."""
    return {
        re.split(r"[{\s]", line, maxsplit=1)[0]
        for line in exposition.splitlines()
        if line.strip() and not line.startswith("#")
    }


def boards() -> list[Json]:
    return [load(name) for name in BOARDS]


# -- 1. the committed JSON is the generator's output -------------------------------


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )


def test_committed_json_is_the_generators_output() -> None:
    checked = run_generator("--check")
    assert checked.returncode == 0, (
        f"the dashboards differ from scripts/dashboards.py's output:\n{checked.stderr}"
    )


def test_check_notices_a_hand_edit(tmp_path: Path) -> None:
    assert run_generator("--dir", str(tmp_path)).returncode == 0
    assert run_generator("--check", "--dir", str(tmp_path)).returncode == 0
    edited = tmp_path / "jitsi-server.json"
    edited.write_text(edited.read_text().replace('"Jitsi: server"', '"Edited by hand"'))
    checked = run_generator("--check", "--dir", str(tmp_path))
    assert checked.returncode == 1
    assert "jitsi-server.json" in checked.stderr
    assert "jitsi-overview.json" not in checked.stderr


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


def test_promql_is_valid(tmp_path: Path) -> None:
    expressions = [e for board in boards() for e in promql_expressions(board)]
    assert len(expressions) > 50, "the extraction found the expressions"
    promtool_check(expressions, tmp_path)


def test_promtool_check_reports_where(tmp_path: Path) -> None:
    with pytest.raises(
        AssertionError, match=r'dash:expr_1: here: sum\(rate\(jitsi_x\{location=~"\.\*"'
    ):
        promtool_check(
            [
                ("fine", "up"),
                ("here", 'sum(rate(jitsi_x{location=~"$location"}[$__rate_interval])'),
            ],
            tmp_path,
        )


# -- 4. every metric is one the monitor exports ---------------------------------------

SECRET = "dashboards-test-secret-0123456789abcdef"


@pytest.fixture
async def fleet() -> AsyncIterator[list[LabServer]]:
    """A plain server with a (simulated) TURN server, a TLS one and one that requires
    tokens (for the JWT matrix)."""
    servers = [
        LabServer(LabOptions(media=True)),
        LabServer(LabOptions(tls=True)),
        LabServer(
            LabOptions(tokens=TokenPolicy("dash-app", SECRET), moderation="token_moderation")
        ),
    ]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


async def scrape_when_probed(base: str, servers: int, timeout: float = 15) -> str:
    """/metrics once every server has been probed and the pool has chosen."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        text, _ = await scrape(base)
        probed = len(re.findall(r"^jitsi_last_probe_timestamp_seconds\{", text, re.M))
        chosen = re.search(r"^jitsi_pool_selected\{.*\} 1(\.0)?$", text, re.M)
        if probed == servers and chosen and "jitsi_jwt_case_success{" in text:
            return text
        assert loop.time() < end, f"the fleet was not probed in time:\n{text}"
        await asyncio.sleep(0.2)


async def test_every_metric_is_exported(
    tmp_path: Path, fleet: list[LabServer], serve: list[Served]
) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(
        servers_yaml(fleet, interval="4s", timeout="4s")
        + "pools:\n  - name: moodle\n    servers: [lab-1, lab-2, lab-3]\n"
    )
    served = await start_serve(config, serve)
    exported = sample_names(await scrape_when_probed(served.base, len(fleet)))

    missing = [
        f"{where}: {metric}"
        for board in boards()
        for where, expr in promql_expressions(board)
        for metric in sorted(metric_names(expr))
        if metric not in exported
    ]
    assert not missing, "not in the monitor's /metrics:\n" + "\n".join(missing)
