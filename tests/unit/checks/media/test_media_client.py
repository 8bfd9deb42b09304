"""One STUN Binding or TURN Allocate against hostile servers on loopback:
garbage answers and silence end in a reason within the time given, never an
exception, and a release (Refresh) met with silence or an error without a
code leaves the allocation a success. (Against coturn: tests/system/test_media_client.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aioice import stun

from monitor.checks.media.client import allocate, binding
from monitor.checks.media.result import MediaService
from monitor.lab.media import LabTurn
from monitor.model import Reason
from monitor.net import NetError
from tests.support.coturn import rest_credentials
from tests.support.media import COOKIE, turn


@pytest.mark.parametrize(
    ("answer", "stun_reason", "turn_reason"),
    [
        (None, Reason.STUN_TIMEOUT, Reason.TURN_TIMEOUT),
        # a success whose length does not match what came: not a STUN message
        (b"\x01\x01\xff\xfc" + COOKIE, Reason.STUN_TIMEOUT, Reason.TURN_TIMEOUT),
        # a success with 64 bytes of junk: no mapped address, no lifetime
        (b"\x01\x01\x00\x40" + COOKIE, Reason.STUN_ERROR, Reason.TURN_ERROR),
        # an error without an error code
        (b"\x01\x11\x00\x40" + COOKIE, Reason.STUN_ERROR, Reason.TURN_ERROR),
    ],
)
async def test_a_hostile_stun_server_ends_in_a_reason(
    hostile: list[asyncio.DatagramTransport],
    answer: bytes | None,
    stun_reason: Reason,
    turn_reason: Reason,
) -> None:
    port = await start_hostile(hostile, answer)
    service = MediaService("stun", "127.0.0.1", port, "udp", "config.js")
    with pytest.raises(NetError) as failed:
        await binding(service, "127.0.0.1", 0.4)
    assert failed.value.reason is stun_reason
    with pytest.raises(NetError) as failed:
        await allocate(turn(port), "127.0.0.1", "u", "p", None, 0.4)
    assert failed.value.reason is turn_reason


@pytest.mark.parametrize("refresh", ["silent", "error_without_code"])
async def test_an_allocation_is_a_success_whatever_its_release_meets(refresh: str) -> None:
    loop = asyncio.get_running_loop()
    server = _BadRelease("lab-secret", refresh)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        user, password = rest_credentials("lab-secret", user="release")
        # 0.5 s for the whole probe: less than the release's own bound (1 s)
        await allocate(turn(port), "127.0.0.1", user, password, None, 0.5)
        assert server.allocations == 1
        assert server.refreshes >= 1
    finally:
        transport.close()


class _BadRelease(LabTurn):
    """The lab's TURN server, allocating as it should but answering a Refresh
    with silence or with an error without ERROR-CODE."""

    def __init__(self, secret: str, refresh: str) -> None:
        super().__init__(secret)
        self.refresh = refresh
        self.refreshes = 0

    def _answer(
        self, request: stun.Message, data: bytes, addr: tuple[str, int]
    ) -> stun.Message | None:
        if request.message_method != stun.Method.REFRESH:
            return super()._answer(request, data, addr)
        self.refreshes += 1
        if self.refresh == "silent":
            return None
        return stun.Message(request.message_method, stun.Class.ERROR, request.transaction_id)


class _Hostile(asyncio.DatagramProtocol):
    """Answers every request with ``answer`` (its type, length and cookie), the
    request's transaction id, and 64 bytes of 0xff; None: silence."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.answer is not None and self.transport is not None:
            self.transport.sendto(self.answer + data[8:20] + b"\xff" * 64, addr)


@pytest.fixture
async def hostile() -> AsyncIterator[list[asyncio.DatagramTransport]]:
    started: list[asyncio.DatagramTransport] = []
    yield started
    for transport in started:
        transport.close()


async def start_hostile(started: list[asyncio.DatagramTransport], answer: bytes | None) -> int:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Hostile(answer), local_addr=("127.0.0.1", 0)
    )
    started.append(transport)
    port: int = transport.get_extra_info("sockname")[1]
    return port
