"""serve's lifecycle in this process: start, reload, stop and persist of a ``Service``.

The Service runs on the test's loop on 127.0.0.1, port 0, as uvicorn's tests
run its ``Server``; what needs a real process (signals, kill -9, systemd)
stays in the subprocess tests (tests/system/test_cli.py, tests/system/test_outbox.py, ...).
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import load_config
from monitor.service import Service, StartError
from monitor.state import State
from tests.support.paths import ROOT
from tests.support.sites import StartSite, eventually, jitsi_app

MakeService = Callable[..., Awaitable[Service]]


def write_config(tmp_path: Path, servers: dict[str, str], extra: str = "") -> Path:
    lines = ["location: lab", "defaults: {interval: 1s, timeout: 1s, signalling: {enabled: false}}"]
    lines += [extra, "servers:"]
    lines += [f"  - {{name: {name}, url: '{url}'}}" for name, url in servers.items()]
    path = tmp_path / "servers.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture
async def service() -> AsyncIterator[MakeService]:
    """Build a Service for a config file, on 127.0.0.1 port 0; stopped after the test."""
    made: list[Service] = []

    async def make(config: Path, **options: Any) -> Service:
        built = Service(config, load_config(config), host="127.0.0.1", port=0, **options)
        made.append(built)
        await built.start()
        return built

    yield make
    for built in made:
        await built.stop()


async def metrics(service: Service) -> str:
    url = f"http://127.0.0.1:{service.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.text()


async def wait_for_metric(service: Service, needle: str, timeout: float = 20) -> str:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while needle not in (text := await metrics(service)):
        assert loop.time() < end, f"{needle!r} never appeared in /metrics:\n{text}"
        await asyncio.sleep(0.1)
    return text


def log_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_start_serves_and_stop_closes_the_port(
    start_site: StartSite, tmp_path: Path, service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor")
    site = await start_site(jitsi_app())
    config = write_config(tmp_path, {"school-1": site.url})
    running = await service(config)
    assert running.port != 0  # the port the system picked
    text = await wait_for_metric(running, 'jitsi_server_up{location="lab",server="school-1"} 1.0')
    assert 'jitsi_monitor_config_last_reload_successful{location="lab"} 1.0' in text
    healthz = f"http://127.0.0.1:{running.port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(healthz) as resp:
        assert (await resp.json())["status"] == "ok"
    [probing] = log_lines(caplog, "probing 1 server(s) on ")
    assert probing.endswith(f"metrics on http://127.0.0.1:{running.port}/metrics")

    await running.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await metrics(running)
    await running.stop()  # a second stop has nothing left to do


async def test_reload_keeps_the_running_config_on_errors_and_names_restart_only_changes(
    start_site: StartSite, tmp_path: Path, service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor")
    site = await start_site(jitsi_app())
    gone = refused_url()
    config = write_config(tmp_path, {"school-1": site.url, "gone": gone})
    running = await service(config)
    await wait_for_metric(running, 'jitsi_server_up{location="lab",server="gone"} 0.0')
    good = config.read_text()

    # A broken config: the running one stays, and the metric says so.
    config.write_text("servers: [\n")
    await running.reload()
    text = await metrics(running)
    assert 'jitsi_monitor_config_last_reload_successful{location="lab"} 0.0' in text
    assert 'server="gone"' in text
    assert len(log_lines(caplog, "config reload failed; keeping the running config")) == 1

    # A server removed goes with all its series; a start-only setting is kept and named.
    config.write_text(good.replace(f"  - {{name: gone, url: '{gone}'}}\n", "") + "concurrency: 3\n")
    await running.reload()
    text = await metrics(running)
    assert 'jitsi_monitor_config_last_reload_successful{location="lab"} 1.0' in text
    assert 'server="gone"' not in text
    assert 'server="school-1"' in text
    [kept] = log_lines(caplog, "only on restart")
    assert "kept the running value of concurrency" in kept
    assert len(log_lines(caplog, "config reloaded: 1 server(s)")) == 1


async def test_a_reload_asked_for_while_reading_reads_once_more(
    tmp_path: Path, service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor")
    config = write_config(tmp_path, {"gone": refused_url()})
    running = await service(config)
    first = running.reload()
    await asyncio.sleep(0)  # the read is now under way in its worker thread
    # Replaced, not rewritten in place: the reader in the thread never sees half a file.
    changed = config.with_suffix(".new")
    changed.write_text(config.read_text() + f"  - {{name: also-gone, url: '{refused_url()}'}}\n")
    changed.replace(config)
    assert running.reload() is first  # no second read beside the first
    await first
    reloads = log_lines(caplog, "config reloaded: ")
    assert len(reloads) == 2
    assert reloads[-1].startswith("config reloaded: 2 server(s)")
    assert set(running.state.targets) == {"gone", "also-gone"}


async def test_the_state_file_is_saved_on_a_period_at_pool_changes_and_at_stop(
    start_site: StartSite, tmp_path: Path, service: MakeService
) -> None:
    first = await start_site(jitsi_app())
    second = await start_site(jitsi_app())
    pools = "pools:\n  - {name: moodle, servers: [lab-1, lab-2], require: [web]}"
    config = write_config(tmp_path, {"lab-1": first.url, "lab-2": second.url})
    config.write_text(config.read_text() + pools + "\n")
    state_file = tmp_path / "jitsi-monitor-state.json"

    # A pool's first choice is saved at once (the period is an hour here).
    running = await service(config, save_every=3600.0)

    def chosen() -> str | None:
        if not state_file.exists():
            return None
        current: str | None = json.loads(state_file.read_text())["pools"]["moodle"]["current"]
        return current

    await eventually(lambda: chosen() is not None, timeout=20)
    assert chosen() in {"lab-1", "lab-2"}
    state_file.unlink()
    await running.stop()
    assert chosen() in {"lab-1", "lab-2"}  # saved again at stop

    # Without pools (so without a pool change), the period saves it.
    state_file.unlink()
    config = write_config(tmp_path, {"lab-1": first.url, "lab-2": second.url})
    again = await service(config, save_every=0.05)
    await eventually(state_file.exists, timeout=10)
    await again.stop()


async def test_a_state_class_comes_in_through_the_constructor(
    tmp_path: Path, service: MakeService
) -> None:
    class Counting(State):
        made = 0

        def __init__(self, **kwargs: str | None) -> None:
            super().__init__(**kwargs)  # type: ignore[arg-type]
            Counting.made += 1

    config = write_config(tmp_path, {"gone": refused_url()})
    running = await service(config, make_state=Counting)
    assert isinstance(running.state, Counting)
    assert Counting.made == 1
    assert running.state.location == "lab"


async def test_a_failed_save_is_logged_and_serve_goes_on(
    tmp_path: Path, service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, {"gone": refused_url()}, "state_file: no-such-dir/state.json")
    running = await service(config)
    running.persist()
    [error] = log_lines(caplog, "cannot save the state to ")
    assert "no-such-dir/state.json" in error
    await metrics(running)


async def test_a_port_in_use_is_a_start_error(tmp_path: Path, service: MakeService) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, {"gone": refused_url()}, f"listen: {{port: {port}}}")
        cfg = load_config(config)
        blocked = Service(config, cfg, host="127.0.0.1", port=port)
        try:
            with pytest.raises(StartError, match=f"cannot listen on 127.0.0.1:{port}: "):
                await blocked.start()
        finally:
            await blocked.stop()  # what start built is closed again


def test_the_service_reaches_not_up_into_the_cli_and_serve_stays_small() -> None:
    """The CLI builds the Service, never the other way round; serve only runs it."""
    root = ROOT / "monitor"
    tree = ast.parse((root / "service.py").read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m == "monitor.cli" or m.startswith("monitor.cli.")]
    assert not [m for m in imported if m == "click"]
    assert len((root / "cli" / "serve.py").read_text().splitlines()) <= 120
