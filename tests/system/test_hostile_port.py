"""Cause 5 of issue 13: serve holds its port under abuse, and its probes never
starve for file descriptors.

``serve`` runs in a child under ``ulimit -n 1024``; this test opens 1,100
idle connections (and some half-sent request heads) to its port. The
monitor's own probes of a healthy server keep succeeding meanwhile, the idle
sockets are closed after the idle timeout, and the port answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.server.guard import IDLE_TIMEOUT
from tests.support.hostile import LIMIT
from tests.support.processes import Served, start_serve
from tests.support.sites import StartSite, jitsi_app


def _low_limit() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


async def _connect_many(port: int, count: int) -> list[socket.socket]:
    loop = asyncio.get_running_loop()
    socks = []
    for i in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        if i % 10 == 0:  # a tenth send half a request head, slowly
            with contextlib.suppress(OSError):
                sock.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(sock)
    return socks


async def test_idle_connections_do_not_starve_the_probes(
    start_site: StartSite, tmp_path: Path, serve: list[Served]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("this test needs to hold 1,100 sockets itself")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    site = await start_site(jitsi_app())
    config = tmp_path / "servers.yaml"
    config.write_text(
        "concurrency: 64\nstate_file: state.json\n"
        "pools: [{name: p, servers: [good], require: [web]}]\n"
        f"servers:\n  - {{name: good, url: '{site.url}', interval: 1s, timeout: 1s,"
        " signalling: {enabled: false}}\n"
    )
    served = await start_serve(config, serve, preexec_fn=_low_limit)
    proc, text = served.proc, served.log
    assert f"open-file limit {LIMIT}" in text
    port = int(served.base.rsplit(":", 1)[1])
    socks: list[socket.socket] = []
    try:
        flood_started = time.monotonic()
        socks = await _connect_many(port, 1100)
        flooded = len(site.requests)
        await asyncio.sleep(3.0)  # three rounds of the healthy server's ladder
        probed = len(site.requests) - flooded
        assert probed >= 6, f"only {probed} requests reached the healthy server under the flood"
        # over the cap: answered 503 at once, not left hanging
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status in (200, 503)
        # the idle and half-sent ones are closed after the idle timeout
        deadline = flood_started + IDLE_TIMEOUT + 5
        open_ones = list(socks)
        while open_ones and time.monotonic() < deadline:
            still = []
            for sock in open_ones:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    still.append(sock)
                    continue
                except OSError:
                    continue
                if data and not data.startswith(b"HTTP/1.1 503"):
                    still.append(sock)
            open_ones = still
            await asyncio.sleep(0.2)
        assert not open_ones, f"{len(open_ones)} connections are still open after the idle timeout"
    finally:
        for sock in socks:
            sock.close()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            metrics = await resp.text()
        async with session.get(f"http://127.0.0.1:{port}/api/v1/pools/p") as resp:
            pool = await resp.json()
    assert re.search(r'jitsi_server_up\{[^}]*server="good"\} 1.0', metrics)
    assert pool["chosen"] == "good"  # the pool never lost its member
    proc.terminate()
    assert proc.stderr is not None
    rest = (await asyncio.wait_for(proc.stderr.read(), 15)).decode()
    await proc.wait()
    log = text + rest
    assert "Too many open files" not in log
    assert "cannot save the state" not in log
    assert "is down" not in log
