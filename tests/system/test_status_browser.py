"""The status pages in a real browser (headless Chromium over CDP) against a
lab fleet with an outage, a failover and a failback; then a restart.

Screenshots at desktop and phone widths go to ``test-artifacts/browser/``
(or to ``$JM_SCREENSHOTS``: ``scripts/screenshots`` points it at the
pictures of README.md and docs/status-pages.md).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from monitor.lab import LabServer, servers_yaml
from tests.support.browser import Browser
from tests.support.paths import ROOT
from tests.support.pools import wait_for_choice
from tests.support.processes import Served, start_serve

SHOTS = Path(os.environ.get("JM_SCREENSHOTS") or ROOT / "test-artifacts" / "browser")

DESKTOP = (1200, 900, False)
PHONE = (390, 844, True)


def config(tmp_path: Path, labs: list[LabServer]) -> Path:
    # 2 s each: on a busy machine a ladder may take more than 1 s.
    text = servers_yaml(labs, interval="2s", timeout="2s")
    text = text.replace(
        "    kind: self_hosted\n", "    kind: self_hosted\n    labels: {region: lab}\n", 1
    )
    text += (
        "pools:\n  - name: moodle\n    servers: [lab-1, lab-2, lab-3]\n"
        "    failover: {after: 2, min_improvement: 20% 10ms, hold_down: 3s}\n"
        "status: {title: Lab servers, refresh: 10s}\n"
    )
    path = tmp_path / "servers.yaml"
    path.write_text(text)
    return path


async def shoot(browser: Browser, url: str, name: str, size: tuple[int, int, bool]) -> None:
    width, height, mobile = size
    await browser.viewport(width, height, mobile)
    await browser.open(url)
    full = await browser.evaluate("document.documentElement.scrollHeight")
    await browser.viewport(width, max(height, int(full)), mobile)
    await browser.screenshot(SHOTS / f"{name}.png", full_page=False)
    await browser.viewport(width, height, mobile)


async def test_pages_in_chromium_through_an_outage_a_failover_and_a_restart(
    tmp_path: Path, labs: list[LabServer], serve: list[Served]
) -> None:
    path = config(tmp_path, labs)
    served = await start_serve(path, serve)
    await wait_for_choice(served.base, "lab-1")
    await asyncio.sleep(2)
    await labs[0].set_fault("refuse")  # lab-1 goes down: the pool moves to lab-2
    await wait_for_choice(served.base, "lab-2")
    await asyncio.sleep(3)
    await labs[0].set_fault("none")  # back: nearer again, it takes the pool back
    await wait_for_choice(served.base, "lab-1", timeout=30)
    await asyncio.sleep(1.5)

    async with Browser() as browser:
        await browser.viewport(*DESKTOP)
        await browser.open(served.base + "/")
        rows = await browser.evaluate(
            """[...document.querySelectorAll('table.servers tr[data-server]')].map(tr => ({
                name: tr.dataset.server,
                verdict: tr.querySelector('.v').textContent,
                uptime: tr.querySelector('td[data-k="24 h"]').textContent,
                chart: !!tr.querySelector('svg.spark'),
            }))"""
        )
        assert [r["name"] for r in rows] == ["lab-1", "lab-2", "lab-3"], rows
        assert all(r["chart"] for r in rows), rows
        assert rows[0]["verdict"] == "up", rows  # lab-1 is back
        uptime = {r["name"]: float(r["uptime"].rstrip("%")) for r in rows}
        assert 0 < uptime["lab-1"] < 100, uptime  # the outage shows in its uptime
        assert uptime["lab-1"] < min(uptime["lab-2"], uptime["lab-3"]), uptime
        pool = await browser.evaluate("document.querySelector('tr[data-pool=moodle]').innerText")
        assert "lab-1" in pool, pool
        assert "better" in pool, pool
        await shoot(browser, served.base + "/", "index-desktop", DESKTOP)
        await shoot(browser, served.base + "/", "index-phone", PHONE)

        await browser.viewport(*DESKTOP)
        await browser.open(served.base + "/servers/lab-1?range=1h")
        incident = await browser.evaluate(
            "[...document.querySelectorAll('table.incidents tr.incident')].map(t => t.innerText)"
        )
        assert len(incident) == 1, incident
        assert "web: connect_refused" in incident[0], incident
        assert "connection refused" in incident[0]  # the detail, in the private view
        assert await browser.evaluate("document.querySelectorAll('svg.chart polyline').length") >= 2
        web = await browser.evaluate("document.querySelector('tr[data-check=web]').innerText")
        assert "failing for" in web, web
        await shoot(browser, served.base + "/servers/lab-1?range=1h", "server-desktop", DESKTOP)
        await shoot(browser, served.base + "/servers/lab-1?range=1h", "server-phone", PHONE)

        await browser.viewport(*DESKTOP)
        await browser.open(served.base + "/pools/moodle?range=1h")
        events = await browser.evaluate(
            """[...document.querySelectorAll('table.failovers tr.event')].map(tr =>
                [...tr.cells].map(td => td.innerText.split('\\n')[0]).slice(1))"""
        )
        assert events[:3] == [
            ["better", "lab-2", "lab-1"],
            ["ineligible", "lab-1", "lab-2"],
            ["initial", "none", "lab-1"],
        ], events
        await shoot(browser, served.base + "/pools/moodle?range=1h", "pool-desktop", DESKTOP)
        await browser.send(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": "dark"}],
        )
        await shoot(browser, served.base + "/", "index-dark", DESKTOP)
        assert browser.problems() == []

    # A restart: the history is still there.
    served.proc.terminate()
    await served.proc.wait()
    again = await start_serve(path, serve)
    async with Browser() as browser:
        await browser.open(again.base + "/servers/lab-1?range=1h")
        incident = await browser.evaluate(
            "[...document.querySelectorAll('table.incidents tr.incident')].map(t => t.innerText)"
        )
        assert len(incident) == 1, incident
        assert "web: connect_refused" in incident[0], incident
        await browser.open(again.base + "/pools/moodle?range=1h")
        assert await browser.evaluate("document.querySelectorAll('tr.event').length") >= 3
        assert browser.problems() == []
