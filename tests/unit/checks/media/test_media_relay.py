"""The TURN relay test against a loopback stand-in that allocates but relays nothing,
and against the lab's simulated TURN server, which relays between its allocations.

A relay that drops the data is ``turn_relay_timeout`` within the time given;
a 403 on CreatePermission is ``turn_relay_forbidden``; a CreatePermission
never answered is ``turn_relay_timeout`` naming it; a relayed address the
address policy refuses is ``turn_relay_unreachable``; broken Data
indications are ignored, never an exception. Both allocations are released
whatever happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aioice import stun

from monitor.checks.media.relay import Indication, read_indication, relay
from monitor.checks.media.result import MediaService
from monitor.checks.media.services import check_address
from monitor.lab.media import LabTurn
from monitor.model import Reason
from monitor.net import NetError
from tests.support.coturn import rest_credentials
from tests.support.turn_standin import TurnStandIn


def _service(port: int) -> MediaService:
    return MediaService("turn", "127.0.0.1", port, "udp", "extdisco")


def _anything(address: str) -> str | None:
    return None


@pytest.fixture
async def standin(request: pytest.FixtureRequest) -> AsyncIterator[TurnStandIn]:
    options = getattr(request, "param", {})
    server = await TurnStandIn.start(**options)
    yield server
    server.close()


async def _fails(server: TurnStandIn, limit: float = 1.5) -> NetError:
    with pytest.raises(NetError) as failed:
        await relay(_service(server.port), "127.0.0.1", None, None, None, _anything, limit)
    return failed.value


async def test_a_relay_that_drops_the_data_is_turn_relay_timeout(standin: TurnStandIn) -> None:
    error = await _fails(standin)
    assert error.reason is Reason.TURN_RELAY_TIMEOUT
    assert "no datagram came back" in error.detail
    assert "external-ip" in error.detail
    assert "relay ports" in error.detail
    # retransmitted, as STUN retransmits, within the time given
    assert standin.sends >= 2
    assert standin.allocations == 2
    assert standin.released == 2


@pytest.mark.parametrize("standin", [{"permission": "forbidden"}], indirect=True)
async def test_a_403_on_create_permission_is_turn_relay_forbidden(standin: TurnStandIn) -> None:
    error = await _fails(standin)
    assert error.reason is Reason.TURN_RELAY_FORBIDDEN
    assert "CreatePermission: error 403 Forbidden IP" in error.detail
    assert standin.sends == 0
    assert standin.released == 2


@pytest.mark.parametrize("standin", [{"permission": "silent"}], indirect=True)
async def test_an_unanswered_create_permission_is_turn_relay_timeout(
    standin: TurnStandIn,
) -> None:
    error = await _fails(standin)
    assert error.reason is Reason.TURN_RELAY_TIMEOUT
    assert "no answer to CreatePermission" in error.detail
    assert standin.released == 2


@pytest.mark.parametrize("standin", [{"garbage": True}], indirect=True)
async def test_broken_data_indications_are_ignored(standin: TurnStandIn) -> None:
    error = await _fails(standin)
    assert error.reason is Reason.TURN_RELAY_TIMEOUT
    assert standin.released == 2


async def test_a_refused_relayed_address_is_turn_relay_unreachable(
    standin: TurnStandIn,
) -> None:
    # The policy of a public server (no private addresses) refuses loopback.
    with pytest.raises(NetError) as failed:
        await relay(
            _service(standin.port),
            "127.0.0.1",
            None,
            None,
            None,
            lambda a: check_address(a, False),
            1.5,
        )
    assert failed.value.reason is Reason.TURN_RELAY_UNREACHABLE
    assert "relayed address 127.0.0.1 is a loopback address" in failed.value.detail
    assert "external-ip" in failed.value.detail
    assert standin.sends == 0
    assert standin.released == 2


async def test_a_closed_port_keeps_the_allocations_reason(standin: TurnStandIn) -> None:
    port = standin.port
    standin.close()
    with pytest.raises(NetError) as failed:
        await relay(_service(port), "127.0.0.1", None, None, None, _anything, 1.0)
    # the ICMP port unreachable of loopback: as an Allocate alone, not a relay reason
    assert failed.value.reason is Reason.TURN_REFUSED


async def test_the_labs_turn_relays_between_its_allocations() -> None:
    lab = await LabTurn.start()
    try:
        user, password = rest_credentials(lab.secret)
        service = MediaService("turn", "127.0.0.1", lab.port, "udp", "extdisco", True)
        rtt, relay_a, relay_b = await relay(
            service, "127.0.0.1", user, password, None, _anything, 3
        )
        assert rtt > 0
        assert relay_a != relay_b
        assert lab.relayed == {}  # both released
    finally:
        lab.close()


def test_an_indication_reads_back() -> None:
    sent = bytes(Indication(("127.0.0.1", 50001), b"hello"))
    assert read_indication(sent) == (("127.0.0.1", 50001), b"hello")
    data = bytes(Indication(("::1", 9), b"x" * 7, stun.Method.DATA))
    assert read_indication(data) == (("::1", 9), b"x" * 7)
    # not an indication, truncated, or DATA longer than the message: nothing
    binding = bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    assert read_indication(binding) is None
    assert read_indication(sent[:-4]) is None
    assert read_indication(b"\x00\x17") is None
