"""A server that is not self_hosted cannot make the monitor reach inside.

Its page's redirects and config.js's ``websocket`` and ``bosh`` must not
lead to a non-public address unless it is the configured URL's own host.
Only loopback addresses are used: 127.0.0.1 is the server's own host, and
127.0.0.2 stands for "inside" (a loopback address is non-public like any
private one). A listener there counts connections, so "refused" means that
nothing reached it, not only that the report says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from monitor.model import Check, Reason, ServerReport
from monitor.net import NetError, Resolver, open_connection
from monitor.net.addresses import Reach, reaching
from monitor.net.aio import aiohttp_failure, client_session
from tests.support.sites import StartSite, jitsi_app, make_config, probe_once
from tests.support.timing import SLACK

INSIDE = "127.0.0.2"


@dataclass
class Listener:
    """A TCP listener that counts the connections it gets."""

    host: str
    port: int
    connections: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def seen(self, count: int) -> int:
        """The connections so far, once ``count`` arrived or the loop went round
        (the accept callback runs a little after the client's connect returns)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SLACK if count else 0.2):
                while self.connections < max(count, 1):
                    self._arrived.clear()
                    await self._arrived.wait()
        return self.connections


StartListener = Callable[[str], Awaitable[Listener]]


@pytest.fixture
async def listen() -> AsyncIterator[StartListener]:
    servers: list[asyncio.Server] = []

    async def start(host: str) -> Listener:
        listener = Listener(host, 0)

        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            listener.connections += 1
            listener._arrived.set()
            writer.close()

        server = await asyncio.start_server(count, host, 0)
        servers.append(server)
        listener.port = server.sockets[0].getsockname()[1]
        return listener

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def config_js(websocket: str | None = None, bosh: str | None = None) -> str:
    urls = "".join(
        f"    {key}: '{url}',\n" for key, url in (("websocket", websocket), ("bosh", bosh)) if url
    )
    return f"var config = {{\n    hosts: {{ domain: 'meet.test' }},\n{urls}}};\n"


async def ladder(url: str, kind: str) -> ServerReport:
    text = f"servers:\n  - name: s\n    url: {url}\n    kind: {kind}\n    timeout: 3s\n"
    return await probe_once(make_config(text))


def failed(report: ServerReport, check: Check) -> str:
    result = report.check(check)
    assert result is not None
    assert result.reason is Reason.PRIVATE_ADDRESS, result
    return result.detail


@pytest.mark.parametrize("kind", ["public", "jaas"])
async def test_a_websocket_on_another_loopback_address_fails_signalling(
    start_site: StartSite, listen: StartListener, kind: str
) -> None:
    inside = await listen(INSIDE)
    url = f"ws://{INSIDE}:{inside.port}/xmpp-websocket"
    site = await start_site(jitsi_app(config_js(websocket=url)))
    report = await ladder(site.url, kind)
    detail = failed(report, Check.SIGNALLING)
    assert f"config.js's {url}:" in detail
    assert f"{INSIDE} is a loopback address" in detail
    assert await inside.seen(0) == 0
    assert not report.up


async def test_bosh_on_another_loopback_address_fails_signalling(
    start_site: StartSite, listen: StartListener
) -> None:
    inside = await listen(INSIDE)
    url = f"http://{INSIDE}:{inside.port}/http-bind"
    site = await start_site(jitsi_app(config_js(bosh=url)))
    report = await ladder(site.url, "public")
    detail = failed(report, Check.SIGNALLING)
    assert f"config.js's {url}:" in detail
    assert await inside.seen(0) == 0


async def test_the_own_host_in_ipv4_mapped_clothing_is_not_the_own_host(
    start_site: StartSite, listen: StartListener
) -> None:
    """The hostile pass's case: ``ws://[::ffff:127.0.0.1]:PORT/internal``."""
    internal = await listen("127.0.0.1")
    url = f"ws://[::ffff:127.0.0.1]:{internal.port}/internal"
    site = await start_site(jitsi_app(config_js(websocket=url)))
    report = await ladder(site.url, "public")
    assert "(IPv4-mapped 127.0.0.1) is a loopback address" in failed(report, Check.SIGNALLING)
    assert await internal.seen(0) == 0


async def test_a_redirect_to_another_loopback_address_fails_web(
    start_site: StartSite, listen: StartListener
) -> None:
    inside = await listen(INSIDE)
    target = f"http://{INSIDE}:{inside.port}/admin"

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    site = await start_site(jitsi_app(routes={"/": redirect}))
    report = await ladder(site.url, "public")
    detail = failed(report, Check.WEB)
    assert detail.startswith(f"{target}: {INSIDE}:{inside.port} leads to {INSIDE} is a loopback")
    assert await inside.seen(0) == 0
    assert not report.up


async def test_a_self_hosted_server_still_reaches_private_addresses(
    start_site: StartSite, listen: StartListener
) -> None:
    inside = await listen(INSIDE)
    url = f"ws://{INSIDE}:{inside.port}/xmpp-websocket"
    site = await start_site(jitsi_app(config_js(websocket=url)))
    report = await ladder(site.url, "self_hosted")
    signalling = report.check(Check.SIGNALLING)
    assert signalling is not None
    assert signalling.reason is not Reason.PRIVATE_ADDRESS
    assert await inside.seen(1) == 1


async def test_the_configured_host_is_reached_on_any_port(
    start_site: StartSite, listen: StartListener
) -> None:
    """A public server on 127.0.0.1 keeps working: its own host is exempt."""
    own = await listen("127.0.0.1")
    site = await start_site(jitsi_app(config_js(bosh=f"http://127.0.0.1:{own.port}/http-bind")))
    report = await ladder(site.url, "public")
    web_check = report.check(Check.WEB)
    assert web_check is not None
    assert web_check.success
    signalling = report.check(Check.SIGNALLING)
    assert signalling is not None
    assert signalling.reason is not Reason.PRIVATE_ADDRESS
    assert await own.seen(1) >= 1


# -- after resolution: a name is judged by the address it leads to --------------------


class _Rebinding(Resolver):
    """A resolver whose names all resolve to 127.0.0.2 (what a rebinding DNS does)."""

    def __init__(self) -> None:
        super().__init__(system=True)

    async def resolve(self, host: str, port: int, kind: int = 0) -> list[str]:
        return [INSIDE]


class _Phases:
    current = ""

    def add(self, phase: str, seconds: float) -> None:
        pass


async def test_open_connection_judges_the_resolved_address(listen: StartListener) -> None:
    inside = await listen(INSIDE)
    reach = Reach("meet.test")
    with pytest.raises(NetError) as raised:
        await open_connection(_Rebinding(), "rebind.test", inside.port, _Phases(), reach=reach)
    assert raised.value.reason is Reason.PRIVATE_ADDRESS
    assert raised.value.detail.startswith(f"rebind.test:{inside.port} leads to {INSIDE} is a")
    # the configured URL's own host may resolve anywhere
    conn = await open_connection(_Rebinding(), "MEET.test.", inside.port, _Phases(), reach=reach)
    conn.abort()
    assert await inside.seen(1) == 1


@pytest.mark.parametrize("host", ["rebind.test", INSIDE])
async def test_aiohttp_judges_the_address_it_connects_to(listen: StartListener, host: str) -> None:
    """BOSH's session: a name and an IP literal (which aiohttp never resolves) alike."""
    inside = await listen(INSIDE)
    session = client_session(_Rebinding())
    try:
        with reaching(Reach("meet.test")), pytest.raises(aiohttp.ClientError) as raised:
            await session.post(f"http://{host}:{inside.port}/http-bind")
        failure = aiohttp_failure(raised.value, host, inside.port, "BOSH")
        assert failure.reason is Reason.PRIVATE_ADDRESS
        assert f"{INSIDE} is a loopback address" in failure.detail
        assert await inside.seen(0) == 0
        # the same session, outside the rule (a self_hosted server's ladder), connects
        with pytest.raises(aiohttp.ClientError):
            await session.post(f"http://{host}:{inside.port}/http-bind")
        assert await inside.seen(1) == 1
    finally:
        await session.close()
