"""The network layer (``monitor.net``): resolver, timed connect and TLS, the error mapping,
the WebSocket client and the aiohttp adapter, against servers on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import struct
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import WSMsgType, web

from monitor.model import Reason
from monitor.net import (
    NetError,
    Resolver,
    cert_info,
    connect_failure,
    dns_failure,
    make_ssl_context,
    open_connection,
    tls_failure,
)
from monitor.net.aio import aiohttp_failure, client_session
from monitor.net.websocket import Message, MessageType, WebSocket
from tests.support.hostile import accept_websocket
from tests.support.sites import StartSite, free_port, server_context, start_zone

NAMES = {"probe.test": "127.0.0.1"}


@pytest.fixture
async def zone() -> AsyncIterator[str]:
    """The loopback DNS server's address, ``127.0.0.1:port``."""
    transport, address = await start_zone(NAMES)
    yield address
    transport.close()


@pytest.fixture
async def resolver(zone: str) -> AsyncIterator[Resolver]:
    r = Resolver([zone])
    yield r
    await r.close()


class Times:
    """A fetch's phase times, as ``open_connection`` fills them."""

    def __init__(self) -> None:
        self.current = ""
        self.phases: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


async def _listen(
    handle: typing.Callable[[asyncio.StreamReader, asyncio.StreamWriter], typing.Awaitable[None]],
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1]


async def _hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


# -- the resolver -------------------------------------------------------------


async def test_a_name_resolves_through_the_configured_server(resolver: Resolver) -> None:
    assert await resolver.resolve("probe.test", 443) == ["127.0.0.1"]


async def test_an_address_is_its_own_answer(resolver: Resolver) -> None:
    assert await resolver.resolve("::1", 443) == ["::1"]
    assert await resolver.resolve("127.0.0.2", 443) == ["127.0.0.2"]


async def test_an_unknown_name_is_a_dns_error(resolver: Resolver) -> None:
    with pytest.raises(NetError) as failed:
        await resolver.resolve("absent.test", 443)
    assert failed.value.reason is Reason.DNS_ERROR
    assert failed.value.detail.startswith("cannot resolve absent.test: ")


async def test_the_system_resolver_knows_localhost() -> None:
    resolver = Resolver(system=True)
    assert "127.0.0.1" in await resolver.resolve("localhost", 80)
    await resolver.close()


# -- timed connect --------------------------------------------------------------


async def test_a_connection_times_resolve_and_connect(resolver: Resolver) -> None:
    server, port = await _listen(_hello)
    times = Times()
    async with server:
        conn = await open_connection(resolver, "probe.test", port, times)
        assert await conn.reader.readline() == b"hello\n"
        conn.abort()
    assert set(times.phases) == {"resolve", "connect"}
    assert all(t >= 0 for t in times.phases.values())
    assert conn.rtt >= 0
    assert conn.reader.arrived is not None


async def test_a_refused_connection(resolver: Resolver) -> None:
    port = free_port()
    times = Times()
    with pytest.raises(NetError) as failed:
        await open_connection(resolver, "probe.test", port, times)
    assert failed.value.reason is Reason.CONNECT_REFUSED
    assert failed.value.detail == (
        f"cannot connect to probe.test:{port} (127.0.0.1: connection refused)"
    )
    assert times.current == "connect"
    assert set(times.phases) == {"resolve", "connect"}


async def test_a_failed_name_still_times_the_resolve(resolver: Resolver) -> None:
    times = Times()
    with pytest.raises(NetError):
        await open_connection(resolver, "absent.test", 443, times)
    assert set(times.phases) == {"resolve"}
    assert times.current == "resolve"


# -- TLS --------------------------------------------------------------------------


async def test_tls_with_a_trusted_certificate(ca: trustme.CA, ca_file: Path) -> None:
    server, port = await _listen(_hello, server_context(ca, "localhost", "127.0.0.1"))
    times = Times()
    async with server:
        conn = await open_connection(
            None, "127.0.0.1", port, times, tls=make_ssl_context(True, ca_file)
        )
        cert = cert_info(conn.writer)
        conn.abort()
    assert set(times.phases) == {"resolve", "connect", "tls"}
    assert cert is not None
    assert cert.tls_version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize(
    ("names", "not_after", "trusted", "reason"),
    [
        (("127.0.0.1",), None, False, Reason.TLS_UNTRUSTED),
        (("other.test",), None, True, Reason.TLS_HOSTNAME_MISMATCH),
        (("127.0.0.1",), dt.datetime(2020, 1, 1, tzinfo=dt.UTC), True, Reason.TLS_EXPIRED),
    ],
    ids=["untrusted", "mismatch", "expired"],
)
async def test_tls_failures(
    ca: trustme.CA,
    ca_file: Path,
    names: tuple[str, ...],
    not_after: dt.datetime | None,
    trusted: bool,
    reason: Reason,
) -> None:
    server, port = await _listen(_hello, server_context(ca, *names, not_after=not_after))
    times = Times()
    async with server:
        with pytest.raises(NetError) as failed:
            await open_connection(
                None,
                "127.0.0.1",
                port,
                times,
                tls=make_ssl_context(True, ca_file if trusted else None),
            )
    assert failed.value.reason is reason
    assert failed.value.detail
    assert times.current == "tls"
    assert "tls" not in times.phases  # a failed handshake is no phase time


async def test_a_handshake_that_never_ends_is_cut_by_the_caller(ca_file: Path) -> None:
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client hangs up
        closed.set()
        writer.close()

    server, port = await _listen(silent)
    async with server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await open_connection(
                    None, "127.0.0.1", port, Times(), tls=make_ssl_context(True, ca_file)
                )
        await asyncio.wait_for(closed.wait(), 5)  # nothing was left open


# -- the error mapping ---------------------------------------------------------------


def test_connect_failure_is_refused_only_when_every_address_refused() -> None:
    both = connect_failure(
        "probe.test",
        443,
        [("::1", ConnectionRefusedError()), ("127.0.0.1", OSError(113, "No route to host"))],
    )
    assert both.reason is Reason.CONNECT_ERROR
    assert both.detail == (
        "cannot connect to probe.test:443 (::1: connection refused; 127.0.0.1: No route to host)"
    )
    refused = connect_failure("probe.test", 443, [("127.0.0.1", ConnectionRefusedError())])
    assert refused.reason is Reason.CONNECT_REFUSED


def test_tls_failure_names_old_servers() -> None:
    reason, detail = tls_failure(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    assert reason is Reason.TLS_ERROR
    assert "TLS 1.0 or 1.1" in detail


def test_a_detail_is_escaped_and_bounded() -> None:
    error = dns_failure("probe.test", "bad\x1b[31m\nanswer" + "x" * 1000)
    assert "\x1b" not in error.detail
    assert "\n" not in error.detail
    assert len(error.detail) < 300


# -- the aiohttp adapter -----------------------------------------------------------------


async def test_aiohttp_resolves_through_the_one_resolver(
    resolver: Resolver, start_site: StartSite
) -> None:
    app = web.Application()
    app.router.add_get("/", _ok)
    site = await start_site(app)
    async with client_session(resolver) as session:
        async with session.get(f"http://probe.test:{site.port}/") as resp:
            assert await resp.text() == "ok"
        with pytest.raises(aiohttp.ClientError) as failed:
            await session.get(f"http://absent.test:{site.port}/")
    error = aiohttp_failure(failed.value, "absent.test", site.port, "BOSH")
    assert error.reason is Reason.DNS_ERROR


async def test_aiohttp_refused() -> None:
    port = free_port()
    resolver = Resolver(system=True)
    async with client_session(resolver) as session:
        with pytest.raises(aiohttp.ClientError) as failed:
            await session.get(f"http://127.0.0.1:{port}/")
    assert aiohttp_failure(failed.value, "127.0.0.1", port, "BOSH").reason is (
        Reason.CONNECT_REFUSED
    )


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _moved(_: web.Request) -> web.Response:
    raise web.HTTPFound("/ws")


# -- the WebSocket client -------------------------------------------------------------------


async def _echo(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=("xmpp",), max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            if msg.data == "ping me":
                await ws.ping(b"p")
            elif msg.data == "big":
                await ws.send_str("x" * 5000)
            elif msg.data == "bye":
                await ws.close(code=4000)
            else:
                await ws.send_str(msg.data)
    return ws


async def _websocket(start_site: StartSite, resolver: Resolver | None = None) -> WebSocket:
    app = web.Application()
    app.router.add_get("/ws", _echo)
    app.router.add_get("/moved", _moved)
    site = await start_site(app)
    return await WebSocket.connect(
        resolver,
        secure=False,
        host="probe.test" if resolver else "127.0.0.1",
        port=site.port,
        target="/ws?room=r",
        headers={"Origin": "http://127.0.0.1"},
        protocols=("xmpp",),
        max_message=1024,
    )


async def test_a_websocket_echoes(start_site: StartSite, resolver: Resolver) -> None:
    ws = await _websocket(start_site, resolver)
    assert ws.protocol == "xmpp"
    assert set(ws.phases) == {"resolve", "connect"}
    await ws.send_text("<iq/>")
    assert await ws.receive() == Message(MessageType.TEXT, "<iq/>")
    await ws.send_text("ping me")  # answered on the way; the server's pong wait is its own
    await ws.send_text("é" * 200)  # a message over 125 bytes: the 16-bit length
    message = await ws.receive()
    assert message.type is MessageType.TEXT
    assert message.data == "é" * 200
    assert ws.arrived() is not None
    await ws.send_text("bye")
    closed = await ws.receive()
    assert closed.type is MessageType.CLOSE
    assert ws.close_code == 4000
    assert ws.closed
    ws.abort()


async def test_a_message_over_the_bound_is_an_error(start_site: StartSite) -> None:
    ws = await _websocket(start_site)
    await ws.send_text("big")
    message = await ws.receive()
    assert message.type is MessageType.ERROR
    assert "exceeds limit 1024" in str(message.data)
    assert ws.closed
    ws.abort()


async def test_a_cancelled_wait_loses_no_frame(start_site: StartSite) -> None:
    ws = await _websocket(start_site)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await ws.receive()
    await ws.send_text("after")
    message = await ws.receive()
    assert message == Message(MessageType.TEXT, "after")
    await asyncio.wait_for(ws.close(), 5)
    assert ws.closed


@pytest.mark.parametrize(
    ("path", "words"),
    [("/absent", "HTTP 404"), ("/moved", "redirect (HTTP 302)")],
    ids=["404", "redirect"],
)
async def test_an_upgrade_refused(start_site: StartSite, path: str, words: str) -> None:
    app = web.Application()
    app.router.add_get("/moved", _moved)
    site = await start_site(app)
    with pytest.raises(NetError) as failed:
        await WebSocket.connect(
            None,
            secure=False,
            host="127.0.0.1",
            port=site.port,
            target=path,
            headers={},
            max_message=1024,
        )
    assert failed.value.reason is Reason.WS_UPGRADE_REFUSED
    assert words in failed.value.detail


async def test_a_wrong_accept_key_is_refused() -> None:
    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IGl0\r\n\r\n"
        )
        await writer.drain()
        await reader.read()
        writer.close()
        await writer.wait_closed()
        done.set()

    done = asyncio.Event()
    server, port = await _listen(liar)
    async with server:
        with pytest.raises(NetError) as failed:
            await WebSocket.connect(
                None,
                secure=False,
                host="127.0.0.1",
                port=port,
                target="/",
                headers={},
                max_message=1024,
            )
        await asyncio.wait_for(done.wait(), 5)  # the probe hung up
    assert failed.value.reason is Reason.WS_UPGRADE_REFUSED
    assert "Invalid challenge response" in failed.value.detail


async def _raw_websocket(
    frames: bytes, seen: asyncio.Queue[bytes], hang_up: bool = False
) -> tuple[asyncio.Server, int, list[asyncio.Task[None]]]:
    """A WebSocket server on raw sockets: after the handshake it sends ``frames``, then
    puts every frame header the client sends in ``seen`` (or hangs up). Also its
    connections' handlers, to wait for (each ends when the client hangs up)."""
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(typing.cast("asyncio.Task[None]", asyncio.current_task()))
        await accept_websocket(reader, writer)
        writer.write(frames)
        if hang_up:
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            return
        try:
            while True:
                first, second = await reader.readexactly(2)
                await reader.readexactly(4 + (second & 0x7F))  # mask key and a short payload
                seen.put_nowait(bytes([first, second]))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            await writer.wait_closed()

    server, port = await _listen(handle)
    return server, port, handlers


async def _connect_raw(port: int) -> WebSocket:
    return await WebSocket.connect(
        None, secure=False, host="127.0.0.1", port=port, target="/", headers={}, max_message=1024
    )


async def test_fragments_are_joined_and_pings_answered() -> None:
    seen: asyncio.Queue[bytes] = asyncio.Queue()
    frames = (
        bytes([0x01, 3])
        + b"<op"  # text, not final
        + bytes([0x89, 1])
        + b"p"  # a ping between the fragments
        + bytes([0x80, 3])
        + b"en>"  # the final continuation
    )
    server, port, handlers = await _raw_websocket(frames, seen)
    async with server:
        ws = await _connect_raw(port)
        assert await ws.receive() == Message(MessageType.TEXT, "<open>")
        pong = await asyncio.wait_for(seen.get(), 5)
        ws.abort()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
    assert pong == bytes([0x8A, 0x81])  # a final pong, masked as a client's frames are


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        (bytes([0xC1, 1]) + b"x", "reserved bits"),
        (bytes([0x80, 1]) + b"x", "Unexpected opcode=0"),
        (bytes([0x89, 126, 0, 200]) + b"x" * 200, "Control frame"),
        (bytes([0x81, 127]) + struct.pack("!Q", 1 << 40), "exceeds limit"),
        (bytes([0x81, 2]) + b"\xff\xfe", "Invalid UTF-8"),
    ],
    ids=["reserved-bits", "stray-continuation", "long-ping", "huge", "not-utf8"],
)
async def test_broken_frames_are_errors(frames: bytes, words: str) -> None:
    server, port, handlers = await _raw_websocket(frames, asyncio.Queue())
    async with server:
        ws = await _connect_raw(port)
        message = await asyncio.wait_for(ws.receive(), 5)
        ws.abort()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
    assert message.type is MessageType.ERROR
    assert words in str(message.data)
    assert ws.closed


async def test_a_connection_that_ends_mid_frame_is_closed() -> None:
    frames = bytes([0x81, 10]) + b"<op"
    server, port, handlers = await _raw_websocket(frames, asyncio.Queue(), hang_up=True)
    async with server:
        ws = await _connect_raw(port)
        message = await asyncio.wait_for(ws.receive(), 5)
        ws.abort()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
    assert message.type is MessageType.CLOSE
    assert ws.close_code == 1006
