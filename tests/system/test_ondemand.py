"""GET /probe (one ladder now, its own series only) and sharding a fleet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import parse_shard
from monitor.lab import LabOptions, LabServer, servers_yaml
from tests.support.cli import promtool_check, run_cli
from tests.support.ondemand import fleet_config
from tests.support.processes import Served, start_prometheus, start_serve
from tests.support.sites import CONFIG_JS, StartSite, jitsi_app, make_config


@pytest.fixture
async def labs() -> AsyncIterator[list[LabServer]]:
    servers = [LabServer(), LabServer(LabOptions(fault="hang")), LabServer()]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


async def get(url: str, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.text(), resp.headers.get("Content-Type", "")


def series(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    found = [v for (n, ls), v in series(text).items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.fixture
async def monitor(tmp_path: Path, labs: list[LabServer], serve: list[Served]) -> Served:
    # only lab-1 and lab-2 are configured; lab-3 is reachable only by URL
    text = servers_yaml(labs[:2], interval="1h", timeout="5s")
    text += "probe:\n  allow: ['http://127.0.0.1:*/']\n"
    path = tmp_path / "servers.yaml"
    path.write_text(text)
    return await start_serve(path, serve)


async def test_probe_answers_with_that_probe_only(monitor: Served) -> None:
    status, text, content_type = await get(f"{monitor.base}/probe?target=lab-1")
    assert status == 200, text
    assert content_type.startswith("text/plain; version=0.0.4")
    assert value(text, "jitsi_server_up", server="lab-1", location="lab") == 1
    assert value(text, "jitsi_check_success", server="lab-1", check="signalling") == 1
    assert value(text, "jitsi_xmpp_duration_seconds", server="lab-1", phase="ping") > 0
    names = {name for name, _ in series(text)}
    assert not {n for n in names if n.startswith(("jitsi_monitor_", "jitsi_pool_"))}
    assert {dict(labels)["server"] for _, labels in series(text)} == {"lab-1"}

    await promtool_check(text)

    status, om, content_type = await get(
        f"{monitor.base}/probe?target=lab-1", Accept="application/openmetrics-text"
    )
    assert content_type.startswith("application/openmetrics-text")
    assert om.endswith("# EOF\n")


async def test_probe_runs_only_the_checks_asked_for(monitor: Served) -> None:
    status, text, _ = await get(f"{monitor.base}/probe?target=lab-1&checks=web")
    assert status == 200, text
    checks = {dict(ls)["check"] for n, ls in series(text) if n == "jitsi_check_success"}
    assert checks == {"web", "configjs", "external_api", "embed"}
    assert "jitsi_xmpp_duration_seconds{" not in text

    status, text, _ = await get(f"{monitor.base}/probe?target=lab-1&checks=web,nonsense")
    assert status == 400
    assert "unknown check 'nonsense'" in text


async def test_probe_keeps_within_the_scrape_timeout(monitor: Served) -> None:
    # lab-2 never answers; Prometheus would give up after 1 s
    status, text, _ = await get(
        f"{monitor.base}/probe?target=lab-2", **{"X-Prometheus-Scrape-Timeout-Seconds": "1"}
    )
    assert status == 200, text
    assert value(text, "jitsi_server_up", server="lab-2") == 0
    assert value(text, "jitsi_check_reason_info", server="lab-2", check="web", reason="timeout")
    # ended by the 1 s scrape timeout, not by the server's own 5 s (a loaded
    # machine may stretch the first, never into the second)
    assert value(text, "jitsi_probe_duration_seconds", server="lab-2") < 4

    status, text, _ = await get(
        f"{monitor.base}/probe?target=lab-1", **{"X-Prometheus-Scrape-Timeout-Seconds": "soon"}
    )
    assert status == 400
    assert "X-Prometheus-Scrape-Timeout-Seconds must be a positive number" in text


async def test_probe_refuses_what_is_not_configured_or_allowed(
    monitor: Served, labs: list[LabServer]
) -> None:
    status, text, _ = await get(f"{monitor.base}/probe?target=nope")
    assert (status, text) == (400, "no server named 'nope' in the config\n")
    status, text, _ = await get(f"{monitor.base}/probe")
    assert status == 400
    assert "/probe?target=NAME" in text
    status, text, _ = await get(f"{monitor.base}/probe?target=http://127.0.0.2:9/")
    assert status == 400
    assert "matches no pattern of probe.allow" in text
    status, text, _ = await get(f"{monitor.base}/probe?target=ftp://127.0.0.1/")
    assert status == 400
    assert "https://" in text

    # a URL that probe.allow opens: probed with the defaults, named by its URL
    url = labs[2].url
    probe = f"{monitor.base}/probe"
    async with aiohttp.ClientSession() as session, session.get(probe, params={"target": url}) as r:
        status, text = r.status, await r.text()
    assert status == 200, text
    assert value(text, "jitsi_server_up", server=url) == 1
    assert value(text, "jitsi_server_info", server=url, kind="public") == 1


async def test_prometheus_scrapes_probe_with_relabeling(
    monitor: Served, tmp_path: Path, processes: list[asyncio.subprocess.Process]
) -> None:
    """The scrape config of docs/sources.md ("On-demand probes"), run by a real Prometheus."""
    address = monitor.base.removeprefix("http://")
    base = await start_prometheus(
        processes,
        tmp_path,
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "jitsi-probe",
                    "metrics_path": "/probe",
                    "static_configs": [{"targets": ["lab-1", "lab-2"]}],
                    "relabel_configs": [
                        {"source_labels": ["__address__"], "target_label": "__param_target"},
                        {"source_labels": ["__param_target"], "target_label": "instance"},
                        {"target_label": "__address__", "replacement": address},
                    ],
                }
            ],
        },
    )
    loop = asyncio.get_running_loop()
    end = loop.time() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            query = {"query": 'jitsi_server_up{job="jitsi-probe"}'}
            async with session.get(f"{base}/api/v1/query", params=query) as resp:
                result = (await resp.json())["data"]["result"]
            got = {r["metric"]["instance"]: r["value"][1] for r in result}
            if len(got) == 2:
                break
            assert loop.time() < end, f"Prometheus never got both probes: {got}"
            await asyncio.sleep(0.5)
        assert got == {"lab-1": "1", "lab-2": "0"}
        # the hanging server's probe ended inside Prometheus' 1 s timeout
        async with session.get(f"{base}/api/v1/targets") as resp:
            targets = (await resp.json())["data"]["activeTargets"]
        assert {t["health"] for t in targets} == {"up"}, [t["lastError"] for t in targets]


# -- sharding ------------------------------------------------------------------


async def test_serve_probes_only_its_shard(tmp_path: Path, serve: list[Served]) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(
        "location: lab\ndefaults: {interval: 1h, signalling: {enabled: false}}\n"
        + fleet_config(12, url="http://127.0.0.1:9/s{i}/")  # nothing listens: refused
    )
    cfg = make_config(path.read_text())
    want = sorted(t.name for t in cfg.fleet(parse_shard("2/3"))[0])
    served = await start_serve(path, serve, "--shard", "2/3")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.base}/api/v1/servers") as resp:
            body = await resp.json()
        async with session.get(f"{served.base}/healthz") as resp:
            health = await resp.json()
    assert sorted(s["server"] for s in body["servers"]) == want
    assert health["shard"] == "2/3"


async def test_check_takes_a_shard(tmp_path: Path) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(
        "defaults: {timeout: 2s, signalling: {enabled: false}}\n"
        + fleet_config(6, url="http://127.0.0.1:9/s{i}/")
    )
    want = {t.name for t in make_config(path.read_text()).fleet(parse_shard("1/2"))[0]}
    result = await run_cli("check", "--json", "--shard", "1/2", str(path))
    assert result.code == 1, result.err  # nothing listens: every server is down
    assert {s["server"] for s in json.loads(result.out)["servers"]} == want
    result = await run_cli("check", "--shard", "3/2", str(path))
    assert result.code == 2
    assert "shard 3/2: i must be between 1 and n" in result.err


async def test_requests_during_a_probe_share_it(monitor: Served) -> None:
    # five scrapes at once of one server: one ladder, one report for all
    answers = await asyncio.gather(*(get(f"{monitor.base}/probe?target=lab-1") for _ in range(5)))
    assert {status for status, _, _ in answers} == {200}
    finished = {value(text, "jitsi_last_probe_timestamp_seconds") for _, text, _ in answers}
    assert len(finished) == 1
    # the next request after it finished runs a ladder of its own
    _, text, _ = await get(f"{monitor.base}/probe?target=lab-1")
    assert value(text, "jitsi_last_probe_timestamp_seconds") > finished.pop()


async def probe_url(monitor: Served, url: str) -> str:
    probe = f"{monitor.base}/probe"
    async with aiohttp.ClientSession() as session, session.get(probe, params={"target": url}) as r:
        assert r.status == 200
        return await r.text()


async def test_a_url_target_stays_on_its_origin(monitor: Served, start_site: StartSite) -> None:
    # probe.allow opens 127.0.0.1; a redirect or config.js must not lead the probe elsewhere
    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.2:9/admin")

    moved = await start_site(jitsi_app(routes={"/": elsewhere}))
    text = await probe_url(monitor, moved.url)
    assert value(text, "jitsi_check_reason_info", check="web", reason="protocol_error")

    away = CONFIG_JS.replace("ws://127.0.0.1:9/", "ws://127.0.0.2:9/") % "false"
    away = away.replace("bosh: '/http-bind',", "")  # no same-host fallback
    other = await start_site(jitsi_app(away))
    text = await probe_url(monitor, other.url)
    assert value(text, "jitsi_check_success", check="configjs") == 1
    assert value(text, "jitsi_check_reason_info", check="signalling", reason="protocol_error")
    assert value(text, "jitsi_check_success", check="signalling") == 0


async def test_a_configured_server_can_be_named_by_its_url(
    monitor: Served, labs: list[LabServer]
) -> None:
    text = await probe_url(monitor, labs[0].url)
    assert value(text, "jitsi_server_up", server="lab-1") == 1


async def test_a_shorter_scrape_does_not_wait_for_a_longer_probe(monitor: Served) -> None:
    # lab-2 hangs: a probe without a scrape timeout runs its 5 s; one with 1 s must not join it
    slow = asyncio.ensure_future(get(f"{monitor.base}/probe?target=lab-2"))
    await asyncio.sleep(0.3)
    status, text, _ = await get(
        f"{monitor.base}/probe?target=lab-2", **{"X-Prometheus-Scrape-Timeout-Seconds": "1"}
    )
    assert status == 200
    # ended by the 1 s scrape timeout, not by the server's own 5 s (a loaded
    # machine may stretch the first, never into the second)
    assert value(text, "jitsi_probe_duration_seconds", server="lab-2") < 4
    _, text, _ = await slow
    assert value(text, "jitsi_probe_duration_seconds", server="lab-2") > 4
