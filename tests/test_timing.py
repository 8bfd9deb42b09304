"""Phase times are taken where the bytes are, not when a busy loop gets round to the probe.

The server runs in a thread of its own, so the monitor's busy loop does not
hold it up; "neighbours" keep the monitor's loop busy as other ladders would
(each iteration of the loop takes some 60 ms).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from monitor.probes.http_client import HttpClient, make_ssl_context

DELAY = 0.1  # the server's think time before its answer
BLOCK = 0.015  # each neighbour's turn on the loop
NEIGHBOURS = 4


@pytest.fixture
def slow_server() -> Iterator[int]:
    """A plain HTTP/1.1 server in a thread: answers each request DELAY s after it came."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            time.sleep(DELAY)
            body = b"<html><title>Jitsi Meet</title></html>"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    listener.close()
    thread.join(5)


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
