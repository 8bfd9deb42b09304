"""Users' round trips from a real browser decide a ``nearest: users`` pool.

Debian's Chromium (headless) loads a test LMS page carrying the beacon's tag
under a strict CSP. Two lab members on loopback: the monitor sees lab-1 as
nearer (lab-2 answers 30 ms later), but lab-1 answers the browser 150 ms
later, so the browser sees lab-2 as nearer. After a few page loads the
``nearest: users`` pool moves to lab-2 and says the users' p50 decided; the
same members in a ``nearest: monitor`` pool stay with lab-1. A page with a
meeting's iframe sends nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from monitor.lab import LabOptions, servers_yaml
from tests.support.beacon_page import FarFromUsers, LmsPage
from tests.support.browser import Browser
from tests.support.pools import get_json
from tests.support.processes import Served, start_serve
from tests.support.sites import free_port

BROWSER_DELAY = 0.150  # lab-1, for the browser only
LAB2_LATENCY = 0.030  # lab-2, for everyone


@pytest.fixture
async def members() -> AsyncIterator[list[FarFromUsers]]:
    near = FarFromUsers(LabOptions(), browser_delay=BROWSER_DELAY, timing=False)
    far = FarFromUsers(LabOptions(latency=LAB2_LATENCY), browser_delay=0.0, timing=True)
    await near.start(host="127.0.0.2")
    await far.start(host="127.0.0.3")
    yield [near, far]
    for member in (near, far):
        await member.stop()


def config(tmp_path: Path, members: list[FarFromUsers], origin: str) -> Path:
    text = servers_yaml(list(members), interval="1s", timeout="1s")
    failover = "failover: {after: 1, min_improvement: 20% 10ms, hold_down: 0s}"
    text += (
        "pools:\n"
        f"  - name: moodle\n    servers: [lab-1, lab-2]\n    nearest: users\n    {failover}\n"
        f"  - name: moodle-monitor\n    servers: [lab-1, lab-2]\n    {failover}\n"
        "beacon:\n"
        f"  origins: ['{origin}']\n"
        "  window: 1h\n  min_samples: 3\n  min_prefixes: 1\n  period: 0s\n  regions: [lab]\n"
    )
    path = tmp_path / "servers.yaml"
    path.write_text(text)
    return path


async def pool(base: str, name: str) -> dict[str, object]:
    status, body = await get_json(f"{base}/api/v1/pools/{name}")
    assert status == 200, body
    return body


async def wait_for(base: str, name: str, want: str, timeout: float = 30) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        body = await pool(base, name)
        if body["chosen"] == want:
            return body
        assert loop.time() < end, f"pool {name} never chose {want}: {body}"
        await asyncio.sleep(0.2)


async def script_state(browser: Browser, timeout: float = 30) -> str:
    """What the script did, once it is done (its tag's data-state)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        state = await browser.evaluate(
            "document.querySelector('script[data-pool]').getAttribute('data-state')"
        )
        if state not in (None, "timing"):
            return str(state)
        assert loop.time() < end, f"the script never finished (state {state})"
        await asyncio.sleep(0.1)


async def metrics(base: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        return await resp.text()


def value(text: str, pattern: str) -> float:
    found = re.search(pattern + r" (\S+)\n", text)
    assert found, pattern
    return float(found.group(1))


async def test_the_pool_follows_the_browser_and_a_meeting_sends_nothing(
    tmp_path: Path, members: list[FarFromUsers], serve: list[Served]
) -> None:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    served = await start_serve(config(tmp_path, members, origin), serve)
    # The monitor's own view: lab-1 is nearer, both pools take it.
    for name in ("moodle", "moodle-monitor"):
        first = await wait_for(served.base, name, "lab-1")
        assert first["why"]["reason"] == "initial"  # type: ignore[index]
    lms = LmsPage(served.base, [m.url for m in members])
    await lms.start(port)
    try:
        async with Browser() as browser:
            # A meeting on the page: the script times nothing and sends nothing.
            await browser.open(f"{origin}/meeting")
            assert await script_state(browser) == "meeting"
            assert [m.browser_requests for m in members] == [0, 0]
            accepted = 'jitsi_beacons_accepted_total{location="lab"}'
            assert value(await metrics(served.base), re.escape(accepted)) == 0

            # Three page loads (period 0s): three beacons fill the window.
            for _ in range(3):
                await browser.open(f"{origin}/course")
                assert await script_state(browser) == "sent"
            assert [m.browser_requests for m in members] == [12, 12]  # 4 requests a load
            csp = [p for p in browser.problems() if "Content Security Policy" in p]
            assert csp == []
    finally:
        await lms.stop()

    text = await metrics(served.base)
    assert value(text, re.escape(accepted)) == 3
    p50 = {
        server: value(
            text,
            re.escape(
                f'jitsi_user_rtt_seconds{{location="lab",quantile="0.5",region="lab",'
                f'server="{server}"}}'
            ),
        )
        for server in ("lab-1", "lab-2")
    }
    # The browser sees lab-2 nearer by 50 ms or more.
    assert p50["lab-1"] - p50["lab-2"] >= 0.050, p50

    moved = await wait_for(served.base, "moodle", "lab-2")
    why = moved["why"]
    assert why["reason"] == "better", why  # type: ignore[index]
    assert "lab-2 by the users' p50" in why["detail"], why  # type: ignore[index]
    scored = {c["server"]: c["scored_by"] for c in moved["candidates"]}  # type: ignore[attr-defined]
    assert scored == {"lab-1": "users", "lab-2": "users"}
    # The pool page's panel: the users' view beside the monitor's, per member.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{served.base}/pools/moodle") as resp,
    ):
        page = await resp.text()
    panel = page.split('<table class="users">', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r'<tr data-server="([^"]+)">(.*?)</tr>', panel))
    assert set(rows) == {"lab-1", "lab-2"}
    assert all(row.endswith("<td>users</td>") for row in rows.values()), rows
    # Without nearest: users, the same members stay with the monitor's view.
    await asyncio.sleep(3)  # a few more rounds
    kept = await pool(served.base, "moodle-monitor")
    assert kept["chosen"] == "lab-1"
    assert kept["why"]["reason"] == "initial"  # type: ignore[index]
