"""The cost of a scrape: ``/metrics`` answers gzip to a scraper that accepts it
(the body decompresses to the text it serves otherwise; a real Prometheus
asks for it and reads it), identity to one that does not; no answer of serve
names the server software in a ``Server`` header.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.render import build_state
from monitor.config.pages import StatusSettings
from monitor.server import make_status_app
from monitor.server.app import accepts_gzip
from monitor.state import State
from monitor.status import Pages
from tests.support.processes import start_prometheus

# Lines that change from one scrape to the next on their own (the process's
# CPU time and memory, the collector's counts): compared by name only.
_MOVING = ("process_", "python_", "# HELP process_", "# TYPE process_", "# HELP python_")


@pytest.fixture
async def base() -> AsyncIterator[str]:
    state, app = build_state(30, 3)
    assert isinstance(state, State)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    # auto_decompress off: the bytes as they came over the wire.
    async with (
        aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=["Accept-Encoding"]) as s,
        s.get(url, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def _steady(body: bytes) -> list[bytes]:
    lines = body.split(b"\n")
    return [
        line.split(b" ")[0] if line.startswith(tuple(m.encode() for m in _MOVING)) else line
        for line in lines
    ]


@pytest.mark.parametrize("accept", [None, "application/openmetrics-text; version=1.0.0"])
async def test_a_scraper_that_asks_gets_gzip_of_the_same_text(
    base: str, accept: str | None
) -> None:
    extra = {"Accept": accept} if accept else {}
    status, headers, plain = await _get(base + "/metrics", **extra)
    assert status == 200
    assert "Content-Encoding" not in headers
    assert plain.startswith(b"# HELP jitsi_")
    # What Prometheus sends (scrape.go: acceptEncodingHeader).
    status, headers, packed = await _get(base + "/metrics", **extra, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept-Encoding"
    assert headers["Content-Type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
        if accept
        else "text/plain; version=0.0.4; charset=utf-8"
    )
    assert int(headers["Content-Length"]) == len(packed)
    assert len(packed) * 5 < len(plain)
    text = gzip.decompress(packed)
    assert _steady(text) == _steady(plain)
    assert text.endswith(b"# EOF\n") is bool(accept)


@pytest.mark.parametrize(
    "encoding", ["identity", "gzip;q=0", "br", "deflate", "*;q=0", "gzip;q=0, *"]
)
async def test_a_scraper_that_does_not_ask_gets_the_text(base: str, encoding: str) -> None:
    status, headers, body = await _get(base + "/metrics", **{"Accept-Encoding": encoding})
    assert status == 200
    assert "Content-Encoding" not in headers
    assert body.startswith(b"# HELP jitsi_")


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        ("gzip", True),
        ("x-gzip", True),
        ("deflate, gzip", True),
        ("gzip;q=0.5, identity;q=1", True),
        ("GZIP", True),
        ("*", True),
        ("br;q=1.0, *;q=0.1", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=nonsense", False),
        ("*;q=0", False),
        ("gzip;q=0, *;q=1", False),
    ],
)
def test_accept_encoding(header: str, wanted: bool) -> None:
    assert accepts_gzip(header) is wanted


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/healthz",
        "/api/v1/servers",
        "/api/v1/pools",
        "/api/v1/pools/pool-0",
        "/api/v1/pools/nonesuch",
        "/",
        "/pools/pool-0",
        "/badge/pool/pool-0.svg",
        "/no/such/path",
        "/probe",
    ],
)
async def test_no_server_header(base: str, path: str) -> None:
    status, headers, _ = await _get(base + path)
    assert status in (200, 400, 404), (path, status)
    assert "Server" not in headers, headers


async def test_no_server_header_on_the_status_port() -> None:
    state, _ = build_state(3, 1, app=False)
    runner = web.AppRunner(make_status_app(Pages(state, StatusSettings())))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        for path in ("/", "/pools/pool-0", "/metrics"):
            status, headers, _ = await _get(base + path)
            assert status == (404 if path == "/metrics" else 200)
            assert "Server" not in headers, headers
    finally:
        await runner.cleanup()


async def test_a_real_prometheus_scrapes_the_gzipped_answer(
    tmp_path: Path, processes: list[asyncio.subprocess.Process]
) -> None:
    _, app = build_state(50, 5)
    encodings: list[str] = []

    async def seen(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/metrics":
            encodings.append(response.headers.get("Content-Encoding", "identity"))

    app.on_response_prepare.append(seen)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        target = f"127.0.0.1:{runner.addresses[0][1]}"
        base = await start_prometheus(
            processes,
            tmp_path,
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "jitsi-monitor", "static_configs": [{"targets": [target]}]}
                ],
            },
        )
        async with aiohttp.ClientSession() as session:
            servers: list[dict[str, object]] = []
            for _ in range(300):  # Prometheus scrapes every second
                url = f"{base}/api/v1/query"
                async with session.get(url, params={"query": "jitsi_monitor_servers"}) as resp:
                    servers = (await resp.json())["data"]["result"]
                if servers:
                    break
                await asyncio.sleep(0.1)
            assert [s["value"][1] for s in servers] == ["50"]  # type: ignore[index]
            query = {"query": 'count(jitsi_server_up{job="jitsi-monitor"})'}
            async with session.get(f"{base}/api/v1/query", params=query) as resp:
                counted = (await resp.json())["data"]["result"]
            assert [c["value"][1] for c in counted] == ["50"]
        assert encodings
        assert set(encodings) == {"gzip"}
    finally:
        await runner.cleanup()
