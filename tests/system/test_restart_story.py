"""A restart keeps the whole story: a pool change decided just before a kill -9
reaches the history (once, however often serve restarts), and
``/api/v1/pools/{pool}`` keeps its ``why``. The lab serves on any loopback
address (``lab --host``), as large as the open-file limit allows.

The monitor is a real ``serve`` process probing a lab server on loopback; the
kill is SIGKILL through os.kill, 0.2 s after the change is seen, well before
the history's next commit (it commits once a second).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.lab import LabServer, servers_yaml
from monitor.ladder import PoolChange
from monitor.selector import Decision, PoolSettings
from monitor.state import State, load_state, save_state
from monitor.statefile import write_json_atomic
from tests.support.cli import run_cli
from tests.support.processes import Served, lab_process, start_serve


@pytest.fixture
async def lab() -> AsyncIterator[LabServer]:
    server = LabServer()
    await server.start()
    yield server
    await server.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())


async def _pool(served: Served) -> dict[str, object]:
    answer: dict[str, object] = json.loads(
        await asyncio.to_thread(_get, served.base + "/api/v1/pools/p")
    )
    return answer


async def _events(served: Served) -> list[str]:
    """The rows of the pool page's failover timeline (read from the history)."""
    page = await asyncio.to_thread(_get, served.base + "/pools/p")
    return page.split('<tr class="event"')[1:]


async def _stop(served: Served, how: signal.Signals) -> None:
    os.kill(served.proc.pid, how)
    await asyncio.wait_for(served.proc.wait(), 30)


async def test_a_pool_change_just_before_a_kill_is_in_the_history_once(
    tmp_path: Path, lab: LabServer, serve: list[Served]
) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(
        servers_yaml([lab], interval="5s", timeout="3s")
        + "pools:\n  - name: p\n    servers: [lab-1]\n    require: [web]\n"
    )
    first = await start_serve(config, serve)
    chosen: dict[str, object] = {}
    for _ in range(1500):  # the first ladder ends within its 3 s timeout
        chosen = await _pool(first)
        if chosen["chosen"] == "lab-1":
            break
        await asyncio.sleep(0.02)
    assert chosen["chosen"] == "lab-1"
    await asyncio.sleep(0.2)
    await _stop(first, signal.SIGKILL)  # before the history's commit of the change

    second = await start_serve(config, serve)
    # /api/v1/pools keeps the change's reason and detail across the restart.
    pool = await _pool(second)
    assert pool["why"] == chosen["why"]
    why = pool["why"]
    assert isinstance(why, dict)
    assert why["reason"] == "initial"
    assert why["detail"]
    rows: list[str] = []
    for _ in range(250):  # the history writes what start handed it within a second
        rows = await _events(second)
        if rows:
            break
        await asyncio.sleep(0.02)
    assert len(rows) == 1
    assert 'data-reason="initial"' in rows[0]
    assert "lab-1" in rows[0]
    await _stop(second, signal.SIGTERM)

    # Handed over again at the next start: still one row, in the page and the file.
    third = await start_serve(config, serve)
    assert (await _pool(third))["why"] == chosen["why"]
    await asyncio.sleep(1.5)  # past a commit of the history (FLUSH_EVERY is 1 s)
    assert len(await _events(third)) == 1
    await _stop(third, signal.SIGTERM)
    with sqlite3.connect(tmp_path / "jitsi-monitor-history.sqlite") as db:
        rows_in_file = db.execute("SELECT pool, chosen, reason FROM pool_events").fetchall()
    assert rows_in_file == [("p", "lab-1", "initial")]


def _state(tmp_path: Path) -> State:
    state = State()
    state.set_pools([PoolSettings(name="p", servers=("a", "b"))])
    return state


def test_the_state_file_keeps_the_latest_decisions(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = _state(tmp_path)
    at = time.time() - 5.123456789
    kept = Decision("p", "a", "b", PoolChange.INELIGIBLE, "a: web connect_refused", at)
    gone = Decision("q", None, "x", PoolChange.INITIAL, "q is no longer configured", at)
    state.decisions.extend([gone, kept])
    save_state(state, path)
    again = _state(tmp_path)
    assert load_state(again, path) is None
    assert list(again.decisions) == [kept]  # the same time to the bit: the history's key


def test_a_state_file_of_before_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(
        path,
        {
            "version": 1,
            "saved_at": time.time(),
            "rtt_tcp_connect": {},
            "rtt_xmpp_ping": {},
            "pools": {"p": {"current": "a", "hold_until": 0.0, "changed_at": 1.0}},
            "outbox": {"events": [], "queues": {}},
        },
    )
    state = _state(tmp_path)
    assert load_state(state, path) is None
    assert state.pool_states["p"].current == "a"
    assert list(state.decisions) == []


@pytest.mark.parametrize(
    "saved",
    [
        {"pool": "p", "previous": None, "chosen": "a", "reason": "nonsense", "detail": "", "at": 1},
        {"pool": "p", "previous": None, "chosen": 3, "reason": "initial", "detail": "", "at": 1},
        {
            "pool": "p",
            "previous": None,
            "chosen": "a",
            "reason": "initial",
            "detail": "",
            "at": "1",
        },
        {"pool": "p", "chosen": "a", "reason": "initial", "detail": "x" * 5000, "at": 1},
        "not a mapping",
    ],
)
def test_a_malformed_saved_decision_is_skipped(tmp_path: Path, saved: object) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"version": 1, "pools": {}, "decisions": [saved]})
    state = _state(tmp_path)
    assert load_state(state, path) is None
    assert list(state.decisions) == []


# -- the lab on any loopback address ------------------------------------------------


async def test_lab_on_another_loopback_address_serves_a_working_fleet() -> None:
    async with lab_process(
        "--host", "127.0.0.2", "--servers", "2", ready=lambda t: t.count("url:") >= 2
    ) as (lab_proc, text):
        urls = [t.url for t in parse_config(text).targets()]
        assert all(url.startswith("http://127.0.0.2:") for url in urls), urls
        config_js = await asyncio.to_thread(_get, urls[0] + "config.js")
        assert f"websocket: '{urls[0].replace('http', 'ws')}xmpp-websocket'" in config_js
        assert "127.0.0.1" not in config_js
        check = await run_cli("check", "--json", "/dev/stdin", stdin=text)
        assert check.code == 0, check.out
        assert [s["verdict"] for s in json.loads(check.out)["servers"]] == ["up", "up"]

        # SIGUSR1 takes lab-1 down and back: it listens again on its own address.
        async def answers() -> bool:
            try:
                await asyncio.to_thread(_get, urls[0])
            except OSError:
                return False
            return True

        for want in (False, True):
            lab_proc.send_signal(signal.SIGUSR1)
            for _ in range(200):
                if await answers() is want:
                    break
                await asyncio.sleep(0.05)
            assert await answers() is want


@pytest.mark.parametrize("host", ["::1", "localhost", "127.0.0.256"])
def test_lab_takes_only_an_ipv4_loopback_address(host: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "--host", host],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "give a loopback address, 127.0.0.0/8" in result.stderr


def test_lab_says_when_its_servers_would_not_fit_the_open_file_limit() -> None:
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    result = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "--servers", "5000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=low_limit,
    )
    assert result.returncode == 2
    assert "5000 lab servers need some 20064 open files, and the limit is 256 (hard 256)" in (
        result.stderr.replace("\n", " ").replace("  ", " ")
    )
    assert result.stdout == ""
