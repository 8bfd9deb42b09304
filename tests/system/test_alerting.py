"""The shipped Prometheus rules, Prometheus and Alertmanager examples, checked
with Debian's promtool and amtool and run for real: a Prometheus scraping the
monitor fires the alerts, an Alertmanager applies the inhibitions."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from monitor.lab import LabOptions, LabServer, servers_yaml
from tests.support.alerting import (
    ALERTMANAGER,
    OPTIONAL_PREFIXES,
    PROMETHEUS_DIR,
    RULE_TESTS,
    RULES,
    firing,
    prometheus_alerting_on,
    query,
    rule_metrics,
    until,
)
from tests.support.paths import ROOT
from tests.support.processes import Served, start, start_serve, wait_http
from tests.support.sites import free_port


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)


def test_rules_pass_promtool() -> None:
    checked = run("promtool", "check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run("promtool", "test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_prometheus_example_config() -> None:
    checked = run("promtool", "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["job_name"] == "jitsi-monitor"


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("severity=critical", "jitsi-oncall"),
        ("severity=warning", "jitsi-team"),
        ("severity=info", "jitsi-chat"),
    ],
)
def test_alertmanager_routes_by_severity(labels: str, receiver: str) -> None:
    checked = run("amtool", "check-config", ALERTMANAGER)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    routed = run("amtool", "config", "routes", "test", "--config.file", ALERTMANAGER, labels)
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert routed.stdout.split() == [receiver]


async def test_alertmanager_mutes_members_while_their_pool_is_down(
    tmp_path: Path, processes: list[asyncio.subprocess.Process]
) -> None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "Debian's prometheus-alertmanager is installed by scripts/check"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await start(
        processes,
        binary,
        f"--config.file={ALERTMANAGER}",
        f"--storage.path={tmp_path}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    )
    await wait_http(f"{base}/-/ready", proc)

    def alert(**labels: str) -> dict[str, object]:
        return {"labels": labels, "annotations": {"summary": "test"}}

    sent = [
        alert(alertname="JitsiPoolNoEligibleServer", severity="critical", scope="pool",
              pool="moodle", location="eu"),
        alert(alertname="JitsiServerDown", severity="warning", scope="server",
              pool="moodle", server="a", location="eu"),
        # the same server in a pool that is fine, and the same pool elsewhere
        alert(alertname="JitsiServerDown", severity="warning", scope="server",
              pool="links", server="a", location="eu"),
        alert(alertname="JitsiServerDown", severity="warning", scope="server",
              pool="moodle", server="a", location="us"),
        alert(alertname="JitsiCertificateExpiring", severity="critical", scope="server",
              server="c", location="eu"),
        alert(alertname="JitsiCertificateExpiringSoon", severity="warning", scope="server",
              server="c", location="eu"),
        alert(alertname="JitsiCertificateExpiringSoon", severity="warning", scope="server",
              server="d", location="eu"),
    ]  # fmt: skip
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/api/v2/alerts", json=sent) as resp:
            assert resp.status == 200, await resp.text()
        async with session.get(f"{base}/api/v2/alerts") as resp:
            got = await resp.json()

    def key(labels: dict[str, str]) -> tuple[str, ...]:
        return (labels["alertname"], labels.get("pool", ""), labels.get("server", ""),
                labels["location"])  # fmt: skip

    states = {key(a["labels"]): a["status"]["state"] for a in got}
    assert states == {
        ("JitsiPoolNoEligibleServer", "moodle", "", "eu"): "active",
        ("JitsiServerDown", "moodle", "a", "eu"): "suppressed",
        ("JitsiServerDown", "links", "a", "eu"): "active",
        ("JitsiServerDown", "moodle", "a", "us"): "active",
        ("JitsiCertificateExpiring", "", "c", "eu"): "active",
        ("JitsiCertificateExpiringSoon", "", "c", "eu"): "suppressed",
        ("JitsiCertificateExpiringSoon", "", "d", "eu"): "active",
    }


@pytest.fixture
async def tls_labs() -> AsyncIterator[list[LabServer]]:
    first = LabServer(LabOptions(tls=True))
    servers = [first, LabServer(LabOptions(tls=True, latency=0.02), ca=first.ca)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


async def test_prometheus_scrapes_the_monitor_and_fires_alerts(
    tmp_path: Path,
    tls_labs: list[LabServer],
    serve: list[Served],
    processes: list[asyncio.subprocess.Process],
) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(
        servers_yaml(tls_labs, interval="1s", timeout="1s")
        + "pools:\n  - name: moodle\n    servers: [lab-1, lab-2]\n    embedding: true\n"
        # a sink, so that the outbox's series exist
        + "notify:\n  command: [/bin/true]\n"
    )
    served = await start_serve(config, serve)
    base = await prometheus_alerting_on(processes, tmp_path, served.base)

    async with aiohttp.ClientSession() as session:

        async def both_up() -> bool:
            result = await query(session, base, 'jitsi_server_up{job="jitsi-monitor"} == 1')
            return {r["metric"]["server"] for r in result} == {"lab-1", "lab-2"}

        await until(both_up, "both lab servers up in Prometheus")
        for r in await query(session, base, "jitsi_server_up"):
            assert r["metric"]["location"] == "lab"

        # every metric name the rules use is one the monitor exports
        async with session.get(f"{base}/api/v1/label/__name__/values") as resp:
            exported = set((await resp.json())["data"])
        used = {n for n in rule_metrics() if not n.startswith(OPTIONAL_PREFIXES)}
        assert used <= exported, f"not exported: {sorted(used - exported)}"

        # docs/sources.md's "nearest healthy server per pool": lab-1 has no added latency
        nearest = next(e for e in docs_promql() if "by (location, pool)" in e)

        async def nearest_is_lab1() -> bool:
            result = await query(session, base, nearest)
            return [(r["metric"]["pool"], r["metric"]["server"]) for r in result] == [
                ("moodle", "lab-1")
            ]

        await until(nearest_is_lab1, "the docs' query naming lab-1")

        await tls_labs[0].set_fault("refuse")

        async def lab1_down() -> list[dict[str, str]]:
            return [
                a
                for a in await firing(session, base)
                if a["alertname"] == "JitsiServerDown" and a.get("server") == "lab-1"
            ]

        (down,) = await until(lab1_down, "JitsiServerDown firing for lab-1")
        assert down["pool"] == "moodle"
        assert down["severity"] == "warning"

        async def failed_over() -> list[dict[str, str]]:
            return [
                a for a in await firing(session, base) if a["alertname"] == "JitsiPoolFailedOver"
            ]

        (moved,) = await until(failed_over, "JitsiPoolFailedOver firing")
        assert moved["pool"] == "moodle"
        assert moved["reason"] == "ineligible"
        # lab-2 stays up: no alert for it, and the pool still has a server
        names = {(a["alertname"], a.get("server")) for a in await firing(session, base)}
        assert ("JitsiServerDown", "lab-2") not in names
        assert ("JitsiPoolNoEligibleServer", None) not in names


def docs_promql() -> list[str]:
    """The expressions of the promql blocks of README.md and docs/ (comment
    lines separate them)."""
    text = "\n".join(
        page.read_text() for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    )
    found: list[str] = []
    for block in re.findall(r"^```promql\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        current: list[str] = []
        for line in [*block.splitlines(), "#"]:
            if line.lstrip().startswith("#"):
                if current:
                    found.append("\n".join(current))
                current = []
            elif line.strip():
                current.append(line)
    return found


def test_docs_promql_is_valid(tmp_path: Path) -> None:
    expressions = docs_promql()
    assert len(expressions) >= 6
    rules = {
        "groups": [
            {
                "name": "docs",
                "rules": [
                    {"record": f"docs:expr_{i}", "expr": e} for i, e in enumerate(expressions)
                ],
            }
        ]
    }
    path = tmp_path / "docs.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = run("promtool", "check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
