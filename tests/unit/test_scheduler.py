"""The scheduler against real loopback servers: cadence, bounds, updates, shutdown."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from monitor.config import MonitorConfig
from monitor.runner import Runner
from monitor.scheduler import Scheduler, first_round_window
from monitor.state import State
from tests.support.sites import StartSite, jitsi_app, make_config


class Gate:
    """Counts ladders in flight on a slow page, and the peak.

    A request counts until its answer or until the client hangs up: a ladder
    cut by its deadline is over for the monitor even though aiohttp goes on
    running the handler. (Counting until the handler ended made a loaded
    machine, where the answer came after the 1 s deadline, see the next
    ladder overlap the abandoned one's handler and report a peak of 2.)
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.now = 0
        self.peak = 0
        self.total = 0

    async def page(self, request: web.Request) -> web.Response:
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        loop = asyncio.get_running_loop()
        end = loop.time() + self.delay
        try:
            while loop.time() < end:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client gave up: its ladder is over
                await asyncio.sleep(min(0.02, max(0.0, end - loop.time())))
        finally:
            self.now -= 1
        return web.Response(text="slow")


def config_for(urls: dict[str, str], extra: str = "") -> MonitorConfig:
    lines = [extra, "servers:"]
    for name, url in urls.items():
        lines += [f"  - name: {name}", f"    url: {url}", "    interval: 1s", "    timeout: 1s"]
        lines += ["    signalling: {enabled: false}"]
    return make_config("\n".join(lines) + "\n")


@pytest.fixture
async def running() -> AsyncIterator[list[tuple[Scheduler, Runner]]]:
    made: list[tuple[Scheduler, Runner]] = []
    yield made
    for scheduler, runner in made:
        await scheduler.shutdown()
        await runner.close()


def start(cfg: MonitorConfig, made: list[tuple[Scheduler, Runner]]) -> tuple[Scheduler, State]:
    state = State(location=cfg.location)
    state.set_targets(cfg.targets())
    runner = Runner(cfg)
    scheduler = Scheduler(runner, state)
    made.append((scheduler, runner))
    scheduler.start(cfg.targets())
    return scheduler, state


async def wait_until(predicate: object, timeout: float = 15) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_every_server_is_probed_repeatedly(
    start_site: StartSite, running: list[tuple[Scheduler, Runner]]
) -> None:
    site = await start_site(jitsi_app())
    _, state = start(config_for({"a": site.url, "b": site.url}), running)
    await wait_until(lambda: len(state.reports) == 2)
    first = {name: r.finished_at for name, r in state.reports.items()}
    await wait_until(lambda: all(state.reports[n].finished_at > first[n] for n in first))
    assert all(r.up for r in state.reports.values())
    assert state.schedule_lag >= 0
    assert "a" in state.rtt_tcp_connect


async def test_concurrency_bound_holds(
    start_site: StartSite, running: list[tuple[Scheduler, Runner]]
) -> None:
    gate = Gate(delay=0.3)
    site = await start_site(jitsi_app(routes={"/": gate.page}))
    names = {f"s{i}": site.url for i in range(6)}
    _, state = start(config_for(names, "concurrency: 2"), running)
    await wait_until(lambda: len(state.reports) == 6)
    assert gate.peak <= 2
    assert gate.total >= 6


async def test_one_ladder_per_server_at_a_time(
    start_site: StartSite, running: list[tuple[Scheduler, Runner]]
) -> None:
    gate = Gate(delay=0.9)  # nearly the whole interval and timeout
    site = await start_site(jitsi_app(routes={"/": gate.page}))
    start(config_for({"slow": site.url}), running)
    await wait_until(lambda: gate.total >= 3)
    assert gate.peak == 1


async def test_update_adds_and_removes_servers(
    start_site: StartSite, running: list[tuple[Scheduler, Runner]]
) -> None:
    site = await start_site(jitsi_app())
    cfg = config_for({"a": site.url, "b": site.url})
    scheduler, state = start(cfg, running)
    await wait_until(lambda: len(state.reports) == 2)
    new = config_for({"b": site.url, "c": site.url})
    state.set_targets(new.targets())
    scheduler.update(new.targets())
    await wait_until(lambda: "c" in state.reports)
    before = len(site.requests)
    await asyncio.sleep(1.5)
    assert "a" not in state.reports, "a removed server is never reported again"
    assert len(site.requests) > before


async def test_shutdown_cancels_ladders_in_flight(
    running: list[tuple[Scheduler, Runner]],
) -> None:
    asked = asyncio.Event()
    hung_up = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        asked.set()
        await reader.read()  # never answer; returns when the client hangs up
        hung_up.set()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = make_config(
        f"servers:\n  - name: hang\n    url: http://127.0.0.1:{port}/\n"
        "    interval: 60s\n    timeout: 30s\n"
    )
    scheduler, state = start(cfg, running)
    await asyncio.wait_for(asked.wait(), 10)
    await asyncio.wait_for(scheduler.shutdown(), 2)
    await asyncio.wait_for(hung_up.wait(), 1)  # the connection was closed, not left hanging
    assert "hang" not in state.reports, "a cancelled ladder reports nothing"
    server.close()
    await server.wait_closed()


async def test_a_large_fleet_first_round_is_spread_by_name(
    running: list[tuple[Scheduler, Runner]],
) -> None:
    """400 servers started together: their first probes come over 16 s
    (40 ms a server), each at a place given by its name, not in one burst."""
    first_seen: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    async def page(request: web.Request) -> web.Response:
        first_seen.setdefault(request.match_info["server"], loop.time())
        return web.Response(text="<html><title>Jitsi Meet</title></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{server}/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        names = [f"s{i}" for i in range(400)]
        lines = ["servers:"]
        for name in names:
            lines += [f"  - name: {name}", f"    url: http://127.0.0.1:{port}/{name}/"]
            lines += ["    interval: 60s", "    timeout: 5s", "    signalling: {enabled: false}"]
        cfg = make_config("\n".join(lines) + "\n")
        started = loop.time()
        start(cfg, running)
        await asyncio.sleep(2.0)
        seen = dict(first_seen)
    finally:
        await runner.cleanup()
    window = first_round_window(len(names), 60.0)
    assert window == pytest.approx(16.0)
    # About an eighth after 2 s of 16; all 400 would be a burst.
    assert 25 <= len(seen) <= 250, len(seen)
    # Who comes first is given by the name: the same after every restart.
    place = {name: zlib.crc32(name.encode()) / 2**32 * window for name in names}
    too_soon = [name for name, at in seen.items() if at - started < place[name] - 0.1]
    assert too_soon == [], "no server is probed before its place in the window"
    early = [name for name in names if place[name] < 1.0]
    missing = [name for name in early if name not in seen]
    assert len(missing) <= len(early) // 4, missing


async def test_servers_taken_over_are_probed_within_the_takeover_and_then_every_interval(
    running: list[tuple[Scheduler, Runner]],
) -> None:
    """HA scale-out hands a shard's servers over: their first probes come within
    the given spread (not the start-up's), the next an interval after the first."""
    names = [f"s{i}" for i in range(20)]
    lines = ["servers:"]
    for name in names:
        lines += [f"  - name: {name}", f"    url: http://127.0.0.1:9/{name}/"]
        lines += ["    interval: 60s", "    timeout: 5s", "    signalling: {enabled: false}"]
    cfg = make_config("\n".join(lines) + "\n")
    state = State(location=cfg.location)
    state.set_targets(cfg.targets())
    runner = Runner(cfg)
    scheduler = Scheduler(runner, state)
    running.append((scheduler, runner))
    scheduler.start([])
    scheduler.update(cfg.targets(), takeover=0.5)
    jobs = {job.id: job for job in scheduler._aps.get_jobs()}  # what APScheduler was given
    for name in names:
        first = jobs[f"{name}/first"].trigger.run_date
        then = jobs[name].trigger.start_date
        assert (then - first).total_seconds() == pytest.approx(60.0)
    firsts = [jobs[f"{n}/first"].trigger.run_date for n in names]
    # 40 ms a server over the 0.5 s floor: 0.8 s, not the start-up's 5 s.
    assert first_round_window(len(names), 60.0, 0.5) == pytest.approx(0.8)
    assert (max(firsts) - min(firsts)).total_seconds() <= 0.8
