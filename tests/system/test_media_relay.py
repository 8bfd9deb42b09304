"""The TURN relay test (``turn_relay``'s client) against Debian's coturn on loopback.

With ``allow-loopback-peers`` two allocations relay a datagram to each other
and back, over UDP, TCP and TLS. Without it (coturn's default refuses
loopback peers) the allocation passes and the relay is
``turn_relay_forbidden``; with a ``denied-peer-ip`` covering the relayed
addresses it is too. Both allocations are released at once: against a
quota of two allocations per user, the next relay test allocates again
without waiting for them to expire.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from monitor.checks.media.client import allocate
from monitor.checks.media.relay import relay
from monitor.checks.media.result import MediaService
from monitor.model import Reason
from monitor.net import NetError
from tests.support.coturn import Coturn, rest_credentials
from tests.support.media import turn
from tests.support.timing import SLACK


def _allow_all(address: str) -> str | None:
    return None


@pytest.fixture(scope="module")
def turn_cert(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("coturn-relay-cert")
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(where / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
    return where / "cert.pem", where / "key.pem"


def _coturn(where: Path, cert: tuple[Path, Path], **options: Any) -> Iterator[Coturn]:
    server = Coturn(where, *cert, **options)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def relaying(
    turn_cert: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Coturn]:
    # A quota of two: the relay test's allocations, and no more at once.
    where = tmp_path_factory.mktemp("coturn-relaying")
    yield from _coturn(where, turn_cert, allow_loopback_peers=True, quota=2)


@pytest.fixture(scope="module")
def default_peers(
    turn_cert: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Coturn]:
    yield from _coturn(tmp_path_factory.mktemp("coturn-default"), turn_cert)


@pytest.fixture(scope="module")
def denied(
    turn_cert: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Coturn]:
    where = tmp_path_factory.mktemp("coturn-denied")
    yield from _coturn(where, turn_cert, allow_loopback_peers=True, denied_peer_ip="127.0.0.1")


def _service(server: Coturn, transport: str) -> MediaService:
    if transport == "tls":
        return MediaService("turns", "127.0.0.1", server.tls_port, "tcp", "extdisco", True)
    return turn(server.port, transport)


async def _relay(
    server: Coturn,
    transport: str,
    ca_ctx: Callable[[], ssl.SSLContext] | None = None,
    user: str = "relay",
    judge: Callable[[str], str | None] = _allow_all,
) -> tuple[float, tuple[str, int], tuple[str, int]]:
    name, password = rest_credentials(server.secret, user=user)
    context = ca_ctx() if ca_ctx is not None else None
    return await relay(
        _service(server, transport),
        "127.0.0.1",
        name,
        password,
        context,
        judge,
        5,
    )


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_allow_loopback_peers_relays(
    relaying: Coturn, transport: str, ca: trustme.CA
) -> None:
    def context() -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return ctx

    rtt, relay_a, relay_b = await _relay(
        relaying, transport, context if transport == "tls" else None, user=f"ok-{transport}"
    )
    assert rtt > 0
    assert relay_a[0] == relay_b[0] == "127.0.0.1"
    assert relay_a != relay_b


async def test_both_allocations_are_released_at_once(relaying: Coturn) -> None:
    # The quota is two allocations per user: a relay test that left its two
    # behind would make the next one turn_quota for their lifetime (60 s).
    await _relay(relaying, "udp", user="again")
    t0 = time.monotonic()
    while (reason := await _relayed(relaying)) is not Reason.OK:
        assert reason is Reason.TURN_QUOTA
        assert time.monotonic() - t0 < 60 - SLACK, "the allocations were not released"
        await asyncio.sleep(0.2)


async def _relayed(server: Coturn) -> Reason:
    try:
        await _relay(server, "udp", user="again")
    except NetError as exc:
        return exc.reason
    return Reason.OK


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_default_coturn_allocates_but_forbids_the_relay(
    default_peers: Coturn, transport: str
) -> None:
    user, password = rest_credentials(default_peers.secret, user="default")
    await allocate(_service(default_peers, transport), "127.0.0.1", user, password, None, 3)
    with pytest.raises(NetError) as failed:
        await _relay(default_peers, transport)
    assert failed.value.reason is Reason.TURN_RELAY_FORBIDDEN
    assert "CreatePermission: error 403" in failed.value.detail


async def test_denied_peer_ip_forbids_the_relay(denied: Coturn) -> None:
    with pytest.raises(NetError) as failed:
        await _relay(denied, "udp")
    assert failed.value.reason is Reason.TURN_RELAY_FORBIDDEN


async def test_a_relayed_address_the_policy_refuses_is_unreachable(relaying: Coturn) -> None:
    # A public server's policy refuses loopback: a relayed address there is
    # what a coturn without external-ip hands out behind NAT.
    with pytest.raises(NetError) as failed:
        await _relay(relaying, "udp", user="policy", judge=lambda a: f"{a} is loopback")
    assert failed.value.reason is Reason.TURN_RELAY_UNREACHABLE
    assert "127.0.0.1 is loopback" in failed.value.detail
    assert "external-ip" in failed.value.detail
