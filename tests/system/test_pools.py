"""Pools end to end: config, serve with lab servers, failover, API and /go."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.lab import LabServer
from tests.support.cli import run_cli, scrape
from tests.support.pools import get_json, pool_config, wait_for_choice
from tests.support.processes import Served, start_serve
from tests.support.sites import StartSite, eventually


async def test_failover_end_to_end(
    tmp_path: Path, labs: list[LabServer], serve: list[Served]
) -> None:
    served = await start_serve(pool_config(tmp_path, labs), serve)
    pool = await wait_for_choice(served.base, "lab-1")
    assert [c["server"] for c in pool["candidates"]] == ["lab-1", "lab-2", "lab-3"]

    async with aiohttp.ClientSession() as session, session.get(f"{served.base}/") as page:
        text = await page.text()
        assert '<tr data-pool="moodle"><td><a href="pools/moodle">moodle</a></td>' in text
        assert '<span class="v up">up</span> lab-1</td>' in text
    go = f"{served.base}/go/moodle/Maths-101"
    async with aiohttp.ClientSession() as session, session.get(go, allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == f"{labs[0].url}Maths-101"

    # the chosen server goes down: the pool moves to the next nearest at once
    await labs[0].set_fault("refuse")
    pool = await wait_for_choice(served.base, "lab-2")
    why = pool["why"]
    assert isinstance(why, dict)
    assert why["reason"] == "ineligible"
    out = next(c for c in pool["candidates"] if c["server"] == "lab-1")
    assert out["eligible"] is False
    assert "connect_refused" in out["why"]
    text, _ = await scrape(served.base)
    assert 'jitsi_pool_selected{location="lab",pool="moodle",server="lab-2"} 1.0' in text
    assert 'jitsi_pool_selected{location="lab",pool="moodle",server="lab-1"} 0.0' in text
    assert (
        'jitsi_pool_failovers_total{location="lab",pool="moodle",reason="ineligible"} 1.0' in text
    )

    # lab-1 recovers and is nearer, but hold-down (1 h) keeps the choice
    await labs[0].set_fault("none")
    await asyncio.sleep(3)
    _, pool = await get_json(f"{served.base}/api/v1/pools/moodle")
    assert pool["chosen"] == "lab-2"

    # every server down: no choice, a clear 503, the last choice kept as stale
    for lab in labs:
        await lab.set_fault("refuse")
    pool = await wait_for_choice(served.base, None)
    assert pool["stale"] is True
    assert pool["last_choice"] is not None, "the last choice stays visible"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.base}/go/moodle/x", allow_redirects=False) as r:
            assert r.status == 503
            assert "no eligible server" in await r.text()
        async with session.get(f"{served.base}/go/nope/x") as r:
            assert r.status == 404
        async with session.get(f"{served.base}/go/moodle/bad%20room") as r:
            assert r.status == 400
    text, _ = await scrape(served.base)
    assert 'jitsi_pool_eligible_servers{location="lab",pool="moodle"} 0.0' in text
    status, servers = await get_json(f"{served.base}/api/v1/servers")
    assert status == 200
    assert [s["server"] for s in servers["servers"]] == ["lab-1", "lab-2", "lab-3"]  # type: ignore[index]


async def test_check_prints_pool_choices(tmp_path: Path, labs: list[LabServer]) -> None:
    path = pool_config(tmp_path, labs)
    result = await run_cli("check", str(path))
    assert result.code == 0, result.out + result.err
    assert "pool moodle: lab-1" in result.out
    result = await run_cli("check", "--json", str(path))
    (pool,) = json.loads(result.out)["pools"]
    assert pool["chosen"] == "lab-1"


HOOK_SECRET = "hook-secret-0123456789abcdef"


async def test_failover_notifies_and_survives_a_restart(
    tmp_path: Path,
    labs: list[LabServer],
    serve: list[Served],
    start_site: StartSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[tuple[dict[str, object], str, bytes]] = []
    fail_first = [True]

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if fail_first[0]:  # the receiver hiccups once: the event is retried
            fail_first[0] = False
            return web.Response(status=503)
        received.append((json.loads(body), request.headers["X-Jitsi-Monitor-Signature"], body))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    receiver = await start_site(app)
    script = tmp_path / "switch.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$JITSI_MONITOR_POOL $JITSI_MONITOR_PREVIOUS $JITSI_MONITOR_CHOSEN '
        '$JITSI_MONITOR_CHOSEN_URL $JITSI_MONITOR_REASON" >> "$0.log"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)
    config = pool_config(tmp_path, labs)
    config.write_text(
        config.read_text()
        + f"notify:\n  webhooks: [{{url: '{receiver.url}hook', secret_env: HOOK_SECRET}}]\n"
        f"  command: ['{script}']\n"
    )
    served = await start_serve(config, serve)
    await wait_for_choice(served.base, "lab-1")
    await labs[0].set_fault("refuse")
    await wait_for_choice(served.base, "lab-2")
    await eventually(lambda: any(e["chosen"] == "lab-2" for e, _, _ in received), timeout=15)

    event, signature, body = next(r for r in received if r[0]["chosen"] == "lab-2")
    assert event["pool"] == "moodle"
    assert event["previous"] == "lab-1"
    assert event["reason"] == "ineligible"
    assert event["chosen_url"] == labs[1].url
    expected = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    log_file = Path(f"{script}.log")
    await eventually(lambda: log_file.exists() and "lab-2" in log_file.read_text())
    assert f"moodle lab-1 lab-2 {labs[1].url} ineligible" in log_file.read_text()

    # Restart: lab-1 is back and nearer, but the pool keeps lab-2 (hold-down
    # and the choice survive), and no failover event is sent.
    await labs[0].set_fault("none")
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.proc.wait(), 15) == 0
    state_file = tmp_path / "jitsi-monitor-state.json"
    assert json.loads(state_file.read_text())["pools"]["moodle"]["current"] == "lab-2"
    events_before = len(received)
    served = await start_serve(config, serve)
    await asyncio.sleep(4)  # several rounds of every server
    _, pool = await get_json(f"{served.base}/api/v1/pools/moodle")
    assert pool["chosen"] == "lab-2"
    assert pool["failovers"] == {"ineligible": 1}
    assert len(received) == events_before


async def test_fails_back_after_hold_down(
    tmp_path: Path, labs: list[LabServer], serve: list[Served]
) -> None:
    config = pool_config(tmp_path, labs)
    config.write_text(config.read_text().replace("hold_down: 1h", "hold_down: 3s"))
    served = await start_serve(config, serve)
    await wait_for_choice(served.base, "lab-1")
    await labs[0].set_fault("refuse")
    await wait_for_choice(served.base, "lab-2")
    loop = asyncio.get_running_loop()
    failed_over = loop.time()
    await labs[0].set_fault("none")
    pool = await wait_for_choice(served.base, "lab-1", timeout=30)
    assert loop.time() - failed_over >= 3, "not before the hold-down"
    why = pool["why"]
    assert isinstance(why, dict)
    assert why["reason"] == "better"
    assert pool["failovers"] == {"ineligible": 1, "better": 1}
