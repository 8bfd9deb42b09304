"""The signalling ladder against hostile servers on loopback: malformed
URLs, servers that never finish closing, hostile BOSH answers and WebSocket
frames, refused connections, and a token that never shows in results. (Against
a real Prosody and a focus: tests/system/test_xmpp.py.)"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from monitor.checks.signalling.xmpp import XmppSettings, probe_xmpp
from monitor.model import ConfigFacts
from tests.support.hostile import accept_websocket
from tests.support.prosody import (
    DOMAIN,
    MUC,
)
from tests.support.sites import StartSite, jitsi_app
from tests.support.xmpp import BILLION_LAUGHS, EXTERNAL_ENTITY, MARKER, Xmpp, _xmpp_handler, reasons


@pytest.mark.parametrize(
    "path",
    ["/redirect", "/missing", "/xmpp-websocket"],
)
async def test_token_never_appears_in_results(start_site: StartSite, path: str) -> None:
    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/redirect")

    site = await start_site(
        jitsi_app(routes={"/redirect": redirect, "/xmpp-websocket": _xmpp_handler(["<bad"])})
    )
    facts = ConfigFacts(
        domain=DOMAIN,
        muc=MUC,
        websocket=f"ws://127.0.0.1:{site.port}{path}",
        bosh=f"http://127.0.0.1:{site.port}{path}",
    )
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + 3
        result = await probe_xmpp(session, facts, site.url, XmppSettings(token=MARKER), deadline)
    assert not result.checks[0].success
    for check in result.checks:
        assert MARKER not in check.detail
    assert any(MARKER in r.query_string for r in site.requests), "the token was sent"


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:99999/x", "ws://127.0.0.1:abc/", "ws://[bad", "ftp://127.0.0.1/x"]
)
async def test_malformed_websocket_urls(xmpp: Xmpp, url: str) -> None:
    result = await xmpp(url)
    assert reasons(result)["signalling"] == "protocol_error"


async def test_server_that_never_finishes_closing(start_site: StartSite, xmpp: Xmpp) -> None:
    """A server that answers everything but never ends the WebSocket."""

    async def stubborn(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("xmpp",), autoclose=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            if "<open" in msg.data:
                await ws.send_str("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
                await ws.send_str(
                    "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
                )
            await ws.send_str("<message xmlns='jabber:client'><body>still here</body></message>")
        return ws

    site = await start_site(jitsi_app(routes={"/xmpp-websocket": stubborn}))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await xmpp(f"ws://127.0.0.1:{site.port}/xmpp-websocket", timeout=2)
    assert reasons(result)["signalling"] == "sasl_not_allowed"
    # aiohttp would wait 10 s for the server's close frame; the probe gives it
    # CLOSE_WAIT (0.5 s) after its 2 s deadline at most
    assert loop.time() - t0 < 10, "closing is bounded even when the server never closes"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            [
                b"<body xmlns='http://jabber.org/protocol/httpbind' ",
                b"type='terminate' ",
                b"condition='remote-stream-error'/>",
            ],
            "stream_error",
        ),
        ([b"<?xml version='1.0' encoding='bogus'?><body/>"], "xml_error"),
        ([b"<body xmlns='http://jabber.org/protocol/httpbind'/>"], "xml_error"),
        ([b"<html>proxy error</html>"], "xml_error"),
    ],
    ids=["terminate-in-chunks", "bad-encoding", "no-sid", "not-bosh"],
)
async def test_hostile_bosh(
    start_site: StartSite, xmpp: Xmpp, body: list[bytes], reason: str
) -> None:
    async def bosh(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for chunk in body:
            await resp.write(chunk)
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    app = jitsi_app()
    app.router.add_post("/http-bind", bosh)
    site = await start_site(app)
    result = await xmpp(None, bosh=f"http://127.0.0.1:{site.port}/http-bind", timeout=3)
    assert reasons(result)["signalling"] == reason


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([BILLION_LAUGHS], "xml_error"),
        ([EXTERNAL_ENTITY], "xml_error"),
        (["<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"], "xml_error"),
        (["x" * (50 * 1024 * 1024)], "xml_error"),
        ([b"\x00\x01binary"], "xml_error"),
        (
            [
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
                "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            ],
            "stream_error",
        ),
        (["<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"], "connection_closed"),
        ([], "timeout"),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "unclosed",
        "50MB",
        "binary",
        "stream-error",
        "close",
        "silence",
    ],
)
async def test_hostile_frames(
    start_site: StartSite, xmpp: Xmpp, frames: list[str | bytes], reason: str
) -> None:
    site = await start_site(jitsi_app(routes={"/xmpp-websocket": _xmpp_handler(frames)}))
    result = await xmpp(f"ws://127.0.0.1:{site.port}/xmpp-websocket", timeout=2.5)
    assert reasons(result)["signalling"] == reason
    assert result.checks[0].detail


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        # a text frame that is not UTF-8
        (bytes([0x81, 15]) + b"<open>\xff\xfe</open>", ("xml_error", "connection_closed")),
        # a frame that announces 1000 bytes and never sends them
        (bytes([0x81, 126, 0x03, 0xE8]) + b"<open xmlns=", ("timeout",)),
    ],
    ids=["invalid-utf8", "never-ends"],
)
async def test_broken_frames(xmpp: Xmpp, frame: bytes, reason: tuple[str, ...]) -> None:
    server, hung_up = await _raw_websocket(frame)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await xmpp(f"ws://127.0.0.1:{port}/xmpp-websocket", timeout=2)
        await asyncio.wait_for(hung_up.wait(), 3)  # the probe closed its connection
    finally:
        server.close()
        await server.wait_closed()
    assert reasons(result)["signalling"] in reason


async def test_refused_websocket(xmpp: Xmpp) -> None:
    result = await xmpp("ws://127.0.0.1:9/xmpp-websocket")
    assert reasons(result)["signalling"] == "connect_refused"


async def _raw_websocket(frame: bytes) -> tuple[asyncio.Server, asyncio.Event]:
    """A WebSocket server written on raw sockets that sends ``frame`` after the handshake."""
    hung_up = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_websocket(reader, writer, b"xmpp")
        writer.write(frame)
        while await reader.read(65536):
            pass
        hung_up.set()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), hung_up
