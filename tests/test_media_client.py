"""One STUN Binding or TURN Allocate against real and hostile servers on loopback.

Against coturn with a quota of one allocation per user: a second allocation
succeeds within seconds (so the first was released at once, not left to
expire after the 60 s it asked for),
and an allocation while another of the same user is held is ``turn_quota``.
Against a hostile UDP server: garbage answers and silence end in a reason
within the time given, never an exception. A release (Refresh) met with
silence or an error without a code leaves the allocation a success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from aioice import stun
from aioice.turn import create_turn_endpoint

from monitor.checks.media.client import MediaError, allocate, binding
from monitor.lab.media import LabTurn
from monitor.model import MediaService, Reason
from tests.coturn import Coturn, rest_credentials


@pytest.fixture(scope="module")
def quota_coturn(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    where = tmp_path_factory.mktemp("coturn-quota")
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(where / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
    server = Coturn(where / "run", where / "cert.pem", where / "key.pem", quota=1)
    server.start()
    yield server
    server.stop()


def turn(port: int, transport: str = "udp") -> MediaService:
    return MediaService("turn", "127.0.0.1", port, transport, "extdisco", credentials=True)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_each_allocation_is_released_at_once(quota_coturn: Coturn, transport: str) -> None:
    user, password = rest_credentials(quota_coturn.secret, user=f"release-{transport}")
    service = turn(quota_coturn.port, transport)
    await allocate(service, "127.0.0.1", user, password, None, 3)
    # coturn frees a released UDP allocation's quota at its next sweep (about a
    # second); an allocation left alone would hold it for its lifetime (60 s).
    t0 = time.monotonic()
    while (reason := await allocated(service, user, password)) is not Reason.OK:
        assert reason is Reason.TURN_QUOTA
        assert time.monotonic() - t0 < 10, "the first allocation was not released"
        await asyncio.sleep(0.2)


async def allocated(service: MediaService, user: str, password: str) -> Reason:
    try:
        await allocate(service, "127.0.0.1", user, password, None, 3)
    except MediaError as exc:
        return exc.reason
    return Reason.OK


async def test_a_held_allocation_makes_the_next_turn_quota(quota_coturn: Coturn) -> None:
    user, password = rest_credentials(quota_coturn.secret, user="held")
    held, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", quota_coturn.port), user, password
    )
    try:
        with pytest.raises(MediaError) as failed:
            await allocate(turn(quota_coturn.port), "127.0.0.1", user, password, None, 3)
        assert failed.value.reason is Reason.TURN_QUOTA
        assert "486" in failed.value.detail
    finally:
        held.close()
        await asyncio.sleep(0.1)  # its release runs as a task


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


COOKIE = b"\x21\x12\xa4\x42"


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
    with pytest.raises(MediaError) as failed:
        await binding(service, "127.0.0.1", 0.4)
    assert failed.value.reason is stun_reason
    with pytest.raises(MediaError) as failed:
        await allocate(turn(port), "127.0.0.1", "u", "p", None, 0.4)
    assert failed.value.reason is turn_reason


async def test_turns_with_an_untrusted_certificate_is_turn_tls_error(
    quota_coturn: Coturn, tmp_path: Path
) -> None:
    import ssl

    user, password = rest_credentials(quota_coturn.secret, user="tls")
    service = MediaService("turns", "127.0.0.1", quota_coturn.tls_port, "tcp", "extdisco")
    with pytest.raises(MediaError) as failed:
        await allocate(service, "127.0.0.1", user, password, ssl.create_default_context(), 3)
    assert failed.value.reason is Reason.TURN_TLS_ERROR
    assert "certificate" in failed.value.detail


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
