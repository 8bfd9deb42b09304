"""server_sources end to end: a running serve follows a files source and an
HTTP SD source without a restart; pools that name members by label follow too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.lab import LabServer
from monitor.sources.names import derive_name
from tests.support.cli import scrape
from tests.support.processes import Served, start_serve
from tests.support.sites import StartSite


@pytest.fixture
async def labs() -> AsyncIterator[list[LabServer]]:
    servers = [LabServer() for _ in range(3)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def until(what: str, check: Callable[[], Any], timeout: float = 25) -> None:
    """Wait until the coroutine ``check()`` returns true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, f"never: {what}"
        await asyncio.sleep(0.2)


def server_entry(name: str, lab: LabServer, team: str) -> str:
    return f"- name: {name}\n  url: {lab.url}\n  labels: {{team: {team}}}\n"


async def test_sources_add_and_remove_servers_in_a_running_serve(
    tmp_path: Path, labs: list[LabServer], serve: list[Served], start_site: StartSite
) -> None:
    # The HTTP SD endpoint: its answer is whatever the test sets.
    answer: dict[str, Any] = {"status": 200, "body": []}
    asked: list[str] = []

    async def targets(request: web.Request) -> web.Response:
        asked.append(request.headers.get("User-Agent", ""))
        return web.Response(
            status=answer["status"],
            text=json.dumps(answer["body"]),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/targets", targets)
    sd = await start_site(app)
    sd_group = [{"targets": [labs[1].url], "labels": {"team": "school-1", "__meta_x": "y"}}]
    answer["body"] = sd_group
    sd_name = derive_name(labs[1].url)

    servers_d = tmp_path / "servers.d"
    servers_d.mkdir()
    (servers_d / "a.yaml").write_text(
        "# school 1's own server\n" + server_entry("own-1", labs[0], "school-1")
    )
    config = tmp_path / "servers.yaml"
    config.write_text(
        "location: lab\ncontact: ops@example.org\n"
        "defaults: {interval: 1s, timeout: 1s}\n"
        "server_sources:\n"
        "  - {name: local, files: 'servers.d/*.yaml', refresh: 1s}\n"
        f"  - {{name: fleet, http_sd: '{sd.url}targets', refresh: 1s, timeout: 2s}}\n"
        "pools:\n"
        "  - name: school\n"
        "    members: {label: {team: school-1}}\n"
        "    failover: {after: 1, hold_down: 1h}\n"
    )
    served = await start_serve(config, serve)
    base = served.base

    async def servers() -> set[str]:
        return {s["server"] for s in (await get_json(f"{base}/api/v1/servers"))["servers"]}

    async def members() -> set[str]:
        pool = await get_json(f"{base}/api/v1/pools/school")
        return {c["server"] for c in pool["candidates"]}

    async def have(names: set[str]) -> bool:
        return await servers() == names and await members() == names

    # The file's server is there from the start; the endpoint's joins once asked.
    await until("both sources' servers", lambda: have({"own-1", sd_name}))
    assert any("ops@example.org" in ua for ua in asked), "the contact is in the User-Agent"
    health = await get_json(f"{base}/healthz")
    by_name = {s["name"]: s for s in health["sources"]}
    assert by_name["local"]["ok"] is True
    assert by_name["local"]["servers"] == 1
    assert by_name["fleet"]["ok"] is True
    assert by_name["fleet"]["servers"] == 1
    assert by_name["fleet"]["type"] == "http_sd"

    # A new file: its server starts probing and joins the pool.
    (servers_d / "b.yaml").write_text(server_entry("own-2", labs[2], "school-1"))
    await until("the new file's server", lambda: have({"own-1", "own-2", sd_name}))

    async def probed(name: str) -> bool:
        text, _ = await scrape(base)
        return f'jitsi_server_up{{location="lab",server="{name}"}} 1.0' in text

    await until("own-2 probed", lambda: probed("own-2"))
    await until("the endpoint's server probed", lambda: probed(sd_name))

    # The endpoint breaks: its server stays, the source says why.
    answer["status"] = 500

    async def fleet_failed() -> bool:
        health = await get_json(f"{base}/healthz")
        fleet = {s["name"]: s for s in health["sources"]}["fleet"]
        return fleet["ok"] is False and "500" in (fleet["error"] or "")

    await until("the endpoint's failure shown", fleet_failed)
    assert sd_name in await servers(), "a broken source keeps the servers it last gave"
    text, _ = await scrape(base)
    assert 'jitsi_monitor_source_last_refresh_successful{location="lab",source="fleet"} 0.0' in text
    assert 'jitsi_monitor_source_servers{location="lab",source="fleet",type="http_sd"} 1.0' in text

    # A file that is no longer valid keeps its server too.
    (servers_d / "b.yaml").write_text("- name: own-2\n  url: ftp://nowhere\n")

    async def local_failed() -> bool:
        health = await get_json(f"{base}/healthz")
        local = {s["name"]: s for s in health["sources"]}["local"]
        return local["ok"] is False and "b.yaml:2" in (local["error"] or "")

    await until("the file's error shown, with its line", local_failed)
    assert "own-2" in await servers()

    # The endpoint mends and drops its server: it stops and leaves /metrics.
    answer["status"], answer["body"] = 200, [{"targets": [], "labels": {}}]
    await until("the endpoint's server gone", lambda: have({"own-1", "own-2"}))
    text, _ = await scrape(base)
    assert sd_name not in text
    # A removed file takes its server away.
    (servers_d / "a.yaml").unlink()
    await until("the removed file's server gone", lambda: have({"own-2"}))
    text, _ = await scrape(base)
    assert 'server="own-1"' not in text

    async def chose_own_2() -> bool:
        pool = await get_json(f"{base}/api/v1/pools/school")
        return bool(pool["chosen"] == "own-2")

    await until("the pool's choice among the members left", chose_own_2)
    assert served.proc.returncode is None, "serve ran throughout, never restarted"
