"""The Grafana dashboards against real tools: the committed JSON is the
generator's output, their PromQL passes promtool, and every metric they
name is exported by a running ``serve``. (The conventions, read from the
JSON alone, are checked in tests/unit/metrics/test_dashboards.py.)"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from monitor.lab import LabOptions, LabServer, servers_yaml
from monitor.lab.tokens import TokenPolicy
from tests.support.alerting import OPTIONAL_PREFIXES, sample_names
from tests.support.cli import scrape
from tests.support.dashboards import (
    BOARDS,
    BUILTIN_VALUES,
    GENERATOR,
    GRAFANA_VARIABLE,
    SECRET,
    Json,
    load,
    metric_names,
    promql_expressions,
)
from tests.support.processes import Served, start_serve

# The LMS page that may send beacons (beacon.origins).
LMS = "https://lms.example"


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


async def test_every_metric_is_exported(
    tmp_path: Path, fleet: list[LabServer], serve: list[Served]
) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(
        servers_yaml(fleet, interval="4s", timeout="4s")
        + f"beacon:\n  origins: [{LMS}]\n"
        + "pools:\n  - name: moodle\n    servers: [lab-1, lab-2, lab-3]\n"
    )
    served = await start_serve(config, serve)
    # One browser's beacon, so that the users' round trips are exported too.
    async with aiohttp.ClientSession() as session:
        sent = await session.post(
            f"{served.base}/beacon",
            data=json.dumps({"pool": "moodle", "rtt": {"lab-1": 12.5}}),
            headers={"Origin": LMS},
        )
        assert sent.status == 204, await sent.text()
    exported = sample_names(await scrape_when_probed(served.base, len(fleet)))

    # Moodle's and HA's series come only with their blocks: their own system
    # tests check those (tests/system/test_moodle_serve.py, test_ha.py).
    missing = [
        f"{where}: {metric}"
        for board in boards()
        for where, expr in promql_expressions(board)
        for metric in sorted(metric_names(expr))
        if metric not in exported and not metric.startswith(OPTIONAL_PREFIXES)
    ]
    assert not missing, "not in the monitor's /metrics:\n" + "\n".join(missing)


def as_promql(expr: str) -> str:
    """Grafana's variables replaced: durations by 5m, the dashboard's by ``.*``."""

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return BUILTIN_VALUES.get(name, ".*")

    return GRAFANA_VARIABLE.sub(value, expr)


def boards() -> list[Json]:
    return [load(name) for name in BOARDS]


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


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )


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
