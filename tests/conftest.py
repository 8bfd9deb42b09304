"""Fixtures every test may use: loopback sites, a test CA, a DNS server that
knows no names, in-process lab servers, the signalling ladder run directly,
and Runners closed after the test. The helpers live in tests/support; the
fixtures that start child processes live in tests/system/conftest.py."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from monitor.checks.signalling.xmpp import XmppResult, XmppSettings, no_redirects, probe_xmpp
from monitor.lab import LabOptions, LabServer
from monitor.model import ConfigFacts
from monitor.runner import Runner
from tests.support.lab import Lab
from tests.support.prosody import DOMAIN, FOCUS, MUC
from tests.support.sites import Site, StartSite, start_zone
from tests.support.xmpp import Xmpp


@pytest.fixture
async def start_site() -> AsyncIterator[StartSite]:
    """Start an aiohttp app on 127.0.0.1 (optionally TLS); records requests and peers."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Site:
        site_info = Site(url="", port=0)

        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            site_info.requests.append(request)
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer:
                site_info.peers.add((peer[0], peer[1]))
            return await handler(request)

        app.middlewares.append(record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        host = "localhost" if ssl_context else "127.0.0.1"
        site_info.url = f"{scheme}://{host}:{port}/"
        site_info.port = port
        return site_info

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def nxdomain_dns() -> AsyncIterator[str]:
    """A DNS server on loopback that knows no names; yields ``127.0.0.1:port``."""
    transport, address = await start_zone()
    yield address
    transport.close()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Surface unclosed sockets and transports in the test that leaked them."""
    yield
    gc.collect()


@pytest.fixture
async def runner_for() -> AsyncIterator[list[Runner]]:
    runners: list[Runner] = []
    yield runners
    for runner in runners:
        await runner.close()


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    started: list[LabServer] = []

    async def start(**options: object) -> LabServer:
        server = LabServer(LabOptions(**options))  # type: ignore[arg-type]
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def xmpp() -> AsyncIterator[Xmpp]:
    """Run the signalling ladder directly with config.js facts."""
    async with aiohttp.ClientSession(trace_configs=[no_redirects()]) as session:

        async def run(
            websocket: str | None,
            domain: str = DOMAIN,
            timeout: float = 5,
            bosh: str | None = None,
            **settings: bool,
        ) -> XmppResult:
            facts = ConfigFacts(domain=domain, muc=MUC, focus=FOCUS, websocket=websocket, bosh=bosh)
            deadline = asyncio.get_running_loop().time() + timeout
            return await probe_xmpp(
                session, facts, "http://127.0.0.1", XmppSettings(**settings), deadline
            )

        yield run
