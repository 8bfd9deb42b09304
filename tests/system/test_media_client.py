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
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aioice.turn import create_turn_endpoint

from monitor.checks.media.client import allocate
from monitor.checks.media.result import MediaService
from monitor.model import Reason
from monitor.net import NetError
from tests.support.coturn import Coturn, rest_credentials
from tests.support.media import turn
from tests.support.timing import SLACK


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
        assert time.monotonic() - t0 < 60 - SLACK, "the first allocation was not released"
        await asyncio.sleep(0.2)


async def allocated(service: MediaService, user: str, password: str) -> Reason:
    try:
        await allocate(service, "127.0.0.1", user, password, None, 3)
    except NetError as exc:
        return exc.reason
    return Reason.OK


async def test_a_held_allocation_makes_the_next_turn_quota(quota_coturn: Coturn) -> None:
    user, password = rest_credentials(quota_coturn.secret, user="held")
    held, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", quota_coturn.port), user, password
    )
    try:
        with pytest.raises(NetError) as failed:
            await allocate(turn(quota_coturn.port), "127.0.0.1", user, password, None, 3)
        assert failed.value.reason is Reason.TURN_QUOTA
        assert "486" in failed.value.detail
    finally:
        held.close()
        await asyncio.sleep(0.1)  # its release runs as a task


async def test_turns_with_an_untrusted_certificate_is_turn_tls_error(
    quota_coturn: Coturn, tmp_path: Path
) -> None:
    import ssl

    user, password = rest_credentials(quota_coturn.secret, user="tls")
    service = MediaService("turns", "127.0.0.1", quota_coturn.tls_port, "tcp", "extdisco")
    with pytest.raises(NetError) as failed:
        await allocate(service, "127.0.0.1", user, password, ssl.create_default_context(), 3)
    assert failed.value.reason is Reason.TURN_TLS_ERROR
    assert "certificate" in failed.value.detail
