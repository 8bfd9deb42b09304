"""``POST /beacon`` against hostile clients: spoofed addresses, bodies that never end,
and sender-chosen regions that must not become /metrics series without bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from unittest import mock

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from monitor.beacon import Beacons
from monitor.metrics import Exposition
from monitor.server import beacon as beacon_http
from monitor.server import make_app
from tests.support.beacons import ORIGIN, address, beacons, body, state


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[object, object], Beacons]]:
    s = state("users")
    b = beacons(s)
    client: TestClient[object, object] = TestClient(TestServer(make_app(s, beacons=b)))
    await client.start_server()
    yield client, b
    await client.close()


async def test_a_second_forwarded_header_cannot_hide_the_proxys(served: tuple) -> None:
    """A proxy that appends its own ``X-Forwarded-For`` line (HAProxy's
    ``option forwardfor``) leaves the client's forged line first: the proxy's
    last line names the client, so one client stays one client."""
    client, _ = served
    statuses = []
    for n in range(25):
        headers = [
            ("Origin", ORIGIN),
            ("X-Forwarded-For", address(n + 1)),  # the client's forgery, fresh each time
            ("X-Forwarded-For", address(0)),  # what the proxy appended: the same client
        ]
        resp = await client.post("/beacon", data=body({"a": 12.5}), headers=headers)
        statuses.append(resp.status)
    assert statuses[:20] == [204] * 20
    assert statuses[20:] == [429] * 5


async def _raw_post(port: int, head: bytes, sent: bytes, last: bytes) -> bytes:
    """Send a request head and part of a body, never the rest; read the answer up to
    ``last``, its body's last bytes (the connection closes only after aiohttp's
    lingering wait for the rest)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + sent)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(last), 60)  # a guard against a hang
    finally:
        writer.close()


async def test_a_body_that_never_ends_is_refused_counted_and_closed(
    served: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, b = served
    monkeypatch.setattr(beacon_http, "BODY_TIMEOUT", 0.2)
    port = client.server.port
    head = (
        b"POST /beacon HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: " + ORIGIN.encode() + b"\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
    )
    answer = await _raw_post(port, head, b'{"pool": ', b"malformed\n")
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 400 Bad Request"
    assert b"Connection: close" in rest
    assert rest.endswith(b"malformed\n")
    assert b.rejected["malformed"] == 1
    # Chunked, without a Content-Length: refused once past the bound, never read whole.
    chunked = (
        b"POST /beacon HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: " + ORIGIN.encode() + b"\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    big = b"%x\r\n%s\r\n" % (4096, b" " * 4096)
    answer = await _raw_post(port, chunked, big, b"too_large\n")
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b.rejected["too_large"] == 1
    assert b.accepted == 0


def test_a_local_proxy_on_a_dual_stack_socket_is_trusted() -> None:
    """Listening on ``::``, a proxy on 127.0.0.1 connects as ``::ffff:127.0.0.1``:
    still loopback, so its ``X-Forwarded-For`` names the client (else every user
    would be the proxy, one address, limited to one client's burst)."""
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("::ffff:127.0.0.1", 4711, 0, 0) if name == "peername" else default
    )
    request = make_mocked_request(
        "POST", "/beacon", headers={"X-Forwarded-For": "127.3.4.5"}, transport=transport
    )
    assert request.remote == "::ffff:127.0.0.1"
    assert beacon_http.client_address(request) == "127.3.4.5"


async def test_client_chosen_regions_add_no_metrics_series(served: tuple) -> None:
    """Each beacon names a region of its sender's choosing: a flood of fresh names
    from many prefixes, each within every limit, adds no series to /metrics;
    the regions of ``beacon.regions`` keep theirs."""
    _, b = served
    b.configure(replace(b.policy, regions=("campus-north",)))
    now = time.time()  # the exposition reads the window at the time of the scrape
    for n in range(300):
        b.receive(body({"a": 12.5}, region=f"r{n}"), ORIGIN, address(n), now)
    b.receive(body({"a": 12.5}, region="campus-north"), ORIGIN, address(300), now)
    assert b.accepted == 301
    text = Exposition(b.state).render().decode()
    samples = [ln for ln in text.splitlines() if ln.startswith("jitsi_user_rtt_samples{")]
    assert {ln.split('region="', 1)[1].split('"', 1)[0] for ln in samples} == {
        "all",
        "default",
        "campus-north",
    }
    assert 'jitsi_user_rtt_samples{location="default",region="default",server="a"} 300' in text
