"""Phase times are taken where the bytes are, not when a busy loop gets round to the probe.

The servers run in threads of their own, so the monitor's busy loop does not
hold it up; "neighbours" keep the monitor's loop busy as other ladders would
(each iteration of the loop takes some 60 ms), and one test blocks the loop
outright while the answer comes in.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from aiohttp import WSMsgType, web
from yarl import URL

from monitor.checks.signalling.xmpp import XmppSettings
from monitor.checks.signalling.xmpp.transport import WebSocketTransport
from monitor.net import make_ssl_context
from monitor.net.http import HttpClient
from monitor.net.transport import _SO_TIMESTAMPNS

DELAY = 0.1  # the server's think time before its answer
BLOCK = 0.015  # each neighbour's turn on the loop
NEIGHBOURS = 4


class HeldServer:
    """An HTTP/1.1 server in a thread (TLS when given a context): holds its answer
    DELAY s after the request came, and notes when it read the request and when
    it began to send its answer (``time.monotonic``)."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.context = context
        self.got = 0.0
        self.sent = 0.0
        self.answered = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
        except OSError:
            return
        conn = self.context.wrap_socket(raw, server_side=True) if self.context else raw
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.got = time.monotonic()
            time.sleep(DELAY)
            body = b"<html><title>Jitsi Meet</title></html>"
            self.sent = time.monotonic()  # the answer reaches the client after this
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            self.answered.set()
            time.sleep(0.5)  # the client hangs up first

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def slow_server() -> Iterator[int]:
    """A plain HTTP/1.1 server in a thread: answers its request DELAY s after it came."""
    server = HeldServer(None)
    yield server.port
    server.close()


def busy_loop(loop: asyncio.AbstractEventLoop) -> threading.Event:
    """Neighbours that each hold the loop for BLOCK s per iteration until the event is set."""
    stop = threading.Event()

    def turn() -> None:
        if stop.is_set():
            return
        time.sleep(BLOCK)
        loop.call_soon(turn)

    for _ in range(NEIGHBOURS):
        loop.call_soon(turn)
    return stop


async def test_http_phases_leave_out_the_loops_own_delays(slow_server: int) -> None:
    client = HttpClient(
        resolver=None,
        ssl_context=make_ssl_context(True, None),
        user_agent="jitsi-monitor-test",
        max_body_bytes=1 << 20,
        max_redirects=3,
    )
    stop = busy_loop(asyncio.get_running_loop())
    try:
        started = time.monotonic()
        async with client:
            fetch = await client.get(f"http://127.0.0.1:{slow_server}/")
        elapsed = time.monotonic() - started
    finally:
        stop.set()
    assert fetch.response is not None
    assert fetch.response.status == 200
    phases = fetch.phases
    assert set(phases) == {"resolve", "connect", "processing", "transfer"}
    # The server's think time is all in processing ...
    assert phases["processing"] >= DELAY
    # ... and the loop's turns after the connection was made and after the
    # last bytes came (two or more iterations of some 60 ms) are in no phase:
    # the probe's own wait is not the server's time. Measured on the
    # coroutine's resumption (as before), the phases would add up to all of it.
    assert elapsed - sum(phases.values()) >= 1.5 * NEIGHBOURS * BLOCK
    assert client.connect_rtt is not None
    assert client.connect_rtt < elapsed


@pytest.fixture
def slow_websocket() -> Iterator[int]:
    """A WebSocket server (subprotocol xmpp) in a thread of its own: answers each
    text frame DELAY s after it came, with the same text."""
    running: dict[str, Any] = {}
    started = threading.Event()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("xmpp",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await asyncio.sleep(DELAY)
                await ws.send_str(msg.data)
        return ws

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/xmpp-websocket", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        done = asyncio.Event()
        running.update(port=runner.addresses[0][1], loop=asyncio.get_running_loop(), done=done)
        started.set()
        await done.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    yield running["port"]
    running["loop"].call_soon_threadsafe(running["done"].set)
    thread.join(10)


async def test_a_websocket_frame_is_timed_when_it_arrived(slow_websocket: int) -> None:
    url = URL(f"ws://127.0.0.1:{slow_websocket}/xmpp-websocket")
    transport = await WebSocketTransport.connect(
        None, url, {}, f"http://127.0.0.1:{slow_websocket}", XmppSettings()
    )
    stop = busy_loop(asyncio.get_running_loop())
    try:
        sent = time.monotonic()
        await transport.send('<iq xmlns="jabber:client" type="get" id="ping-1"/>')
        frame = await transport.recv()
        resumed = time.monotonic()
    finally:
        stop.set()
    arrived = transport.arrived()
    await transport.abort()
    assert frame.get("id") == "ping-1"
    assert arrived is not None
    # The answer came DELAY after it was sent; the probe got the loop back at
    # least one round of the neighbours (4 x 15 ms) after the frame was there.
    assert arrived - sent >= DELAY
    assert resumed - arrived >= 0.9 * NEIGHBOURS * BLOCK


@pytest.mark.skipif(_SO_TIMESTAMPNS is None, reason="kernel receive stamps are Linux's")
@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
async def test_an_answer_that_came_while_the_loop_was_blocked_is_timed_when_it_came(
    secure: bool, ca: trustme.CA, ca_file: Any
) -> None:
    context = None
    if secure:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
    server = HeldServer(context)
    client = HttpClient(
        resolver=None,
        ssl_context=make_ssl_context(True, ca_file),
        user_agent="jitsi-monitor-test",
        max_body_bytes=1 << 20,
        max_redirects=3,
    )
    loop = asyncio.get_running_loop()
    blocked: list[float] = []

    def block_until_well_after_the_answer() -> None:
        # Called soon after the request went out: the loop does nothing else
        # until the answer has been there for a while.
        if server.answered.wait(10):
            time.sleep(BLOCK_AFTER)
        blocked.append(time.monotonic())

    def on_request_sent() -> None:
        if server.got:
            loop.call_soon(block_until_well_after_the_answer)
        else:
            loop.call_later(0.005, on_request_sent)

    loop.call_soon(on_request_sent)
    try:
        async with client:
            scheme = "https" if secure else "http"
            fetch = await client.get(f"{scheme}://127.0.0.1:{server.port}/")
    finally:
        server.close()
    assert fetch.response is not None
    assert fetch.response.status == 200
    assert blocked
    assert blocked[0] >= server.sent + BLOCK_AFTER
    held = server.sent - server.got
    processing = fetch.phases["processing"]
    # The server held the answer ``held`` s; the loop read it BLOCK_AFTER s
    # after it was sent. Timed at the read, processing would be at least
    # held + BLOCK_AFTER; with the kernel's receive stamp it is the held
    # time plus the loopback path both ways.
    assert held <= processing < held + BLOCK_AFTER / 2


BLOCK_AFTER = 0.4
