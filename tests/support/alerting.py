"""The shipped Prometheus rules and Alertmanager config, and asking a running
Prometheus what it has (queries, firing alerts)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.paths import ROOT
from tests.support.processes import start_prometheus

PROMETHEUS_DIR = ROOT / "dashboards" / "prometheus"


RULES = PROMETHEUS_DIR / "jitsi-monitor.rules.yml"


RULE_TESTS = PROMETHEUS_DIR / "jitsi-monitor.rules.test.yml"


ALERTMANAGER = ROOT / "dashboards" / "alertmanager" / "alertmanager.yml"


def rules_with_short_for(path: Path) -> None:
    """The shipped rules, with `for:` short enough for a test."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))


async def prometheus_alerting_on(
    processes: list[asyncio.subprocess.Process], workdir: Path, monitor_base: str
) -> str:
    """A real Prometheus scraping ``serve`` at ``monitor_base`` every second and
    evaluating the shipped rules (with short ``for:``); its base URL."""
    rules = workdir / "rules.yml"
    rules_with_short_for(rules)
    monitor = monitor_base.removeprefix("http://")
    return await start_prometheus(
        processes,
        workdir,
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": "jitsi-monitor", "static_configs": [{"targets": [monitor]}]}
            ],
        },
    )


async def query(session: aiohttp.ClientSession, base: str, promql: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/api/v1/query", params={"query": promql}) as resp:
        body = await resp.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def firing(session: aiohttp.ClientSession, base: str) -> list[dict[str, str]]:
    async with session.get(f"{base}/api/v1/alerts") as resp:
        body = await resp.json()
    return [a["labels"] for a in body["data"]["alerts"] if a["state"] == "firing"]


async def until(check: Any, what: str, timeout: float = 40) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert loop.time() < end, f"{what} never happened"
        await asyncio.sleep(0.5)


SEVERITIES = {"critical", "warning", "info"}


# Metric families that only a serve with the matching block exports: the
# alert rules on them are checked against /metrics by that block's own system
# test (tests/system/test_moodle_serve.py, tests/system/test_ha.py).
OPTIONAL_PREFIXES: tuple[str, ...] = ("jitsi_moodle_", "jitsi_monitor_ha_")


def rule_metrics(prefix: str = "jitsi_") -> set[str]:
    """The metric names the shipped alert rules use that start with ``prefix``."""
    exprs = " ".join(rule["expr"] for rule in alerts())
    return {name for name in re.findall(r"\bjitsi_[a-z_]+\b", exprs) if name.startswith(prefix)}


def sample_names(text: str) -> set[str]:
    """The sample names of an exposition's text."""
    return {
        re.split(r"[{\s]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    }


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]
