"""``POST /beacon`` against hostile clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.beacon import Beacons
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
