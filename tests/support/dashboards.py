"""The shipped Grafana dashboards read as data: their panels, variables and
PromQL, and the generator that writes them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.support.paths import ROOT

GENERATOR = ROOT / "scripts" / "dashboards.py"


GRAFANA = ROOT / "dashboards" / "grafana"


BOARDS = ("jitsi-overview", "jitsi-server")


Json = dict[str, Any]


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


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bjitsi_[a-z0-9_]+", expr))


SECRET = "dashboards-test-secret-0123456789abcdef"


def dashboard_metrics(prefix: str = "jitsi_") -> set[str]:
    """The metric names the shipped dashboards' queries use that start with ``prefix``."""
    return {
        metric
        for name in BOARDS
        for _, expr in promql_expressions(load(name))
        for metric in metric_names(expr)
        if metric.startswith(prefix)
    }
