"""``/beacon.js``, ``/beacon/pools/{pool}`` and ``POST /beacon`` in-process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.beacon import Beacons
from monitor.metrics import Exposition
from monitor.server import make_app
from tests.support.beacons import ORIGIN, beacons, body, state


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[object, object], Beacons]]:
    s = state("users")
    b = beacons(s)
    client: TestClient[object, object] = TestClient(TestServer(make_app(s, beacons=b)))
    await client.start_server()
    yield client, b
    await client.close()


async def test_the_script_is_plain_javascript_without_cookies(served: tuple) -> None:
    client, _ = served
    resp = await client.get("/beacon.js")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in resp.headers
    text = await resp.text()
    assert "navigator.sendBeacon" in text
    for word in ("eval(", "document.cookie", "new Function", "location.pathname"):
        assert word not in text


async def test_only_allowed_origins_learn_the_members(served: tuple) -> None:
    client, _ = served
    resp = await client.get("/beacon/pools/moodle", headers={"Origin": ORIGIN})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert await resp.json() == {
        "pool": "moodle",
        "period": 0.0,
        "members": [
            {"server": "a", "url": "https://a.example/favicon.ico"},
            {"server": "b", "url": "https://b.example/favicon.ico"},
        ],
    }
    other = await client.get("/beacon/pools/moodle", headers={"Origin": "https://evil.example"})
    assert other.status == 403
    assert "Access-Control-Allow-Origin" not in other.headers
    missing = await client.get("/beacon/pools/nope", headers={"Origin": ORIGIN})
    assert missing.status == 404


async def test_beacons_are_taken_or_refused_with_their_reason(served: tuple) -> None:
    client, b = served
    ok = await client.post("/beacon", data=body({"a": 12.5}), headers={"Origin": ORIGIN})
    assert ok.status == 204
    assert b.accepted == 1
    wrong = await client.post(
        "/beacon", data=body({"a": 12.5}), headers={"Origin": "https://evil.example"}
    )
    assert (wrong.status, await wrong.text()) == (403, "origin\n")
    huge = await client.post("/beacon", data=b"x" * (1 << 20), headers={"Origin": ORIGIN})
    assert (huge.status, await huge.text()) == (413, "too_large\n")
    nan = await client.post(
        "/beacon", data=b'{"pool": "moodle", "rtt": {"a": NaN}}', headers={"Origin": ORIGIN}
    )
    assert (nan.status, await nan.text()) == (400, "malformed\n")
    text = Exposition(b.state).render().decode()
    assert 'jitsi_beacons_rejected_total{location="default",reason="origin"} 1' in text
    assert 'jitsi_beacons_rejected_total{location="default",reason="too_large"} 1' in text
    assert 'jitsi_beacons_rejected_total{location="default",reason="malformed"} 1' in text
    assert 'jitsi_beacons_accepted_total{location="default"} 1' in text
    assert (
        'jitsi_user_rtt_seconds{location="default",quantile="0.5",region="all",server="a"} 0.0125'
        in text
    )
    assert 'jitsi_user_rtt_samples{location="default",region="default",server="a"} 1' in text
    assert 'jitsi_user_rtt_prefixes{location="default",server="a"} 1' in text
    assert 'jitsi_user_rtt_prefixes{location="default",server="b"} 0' in text


async def test_one_client_is_limited(served: tuple) -> None:
    client, b = served
    statuses = []
    for _ in range(25):
        resp = await client.post("/beacon", data=body({"a": 12.5}), headers={"Origin": ORIGIN})
        statuses.append(resp.status)
    assert statuses[:20] == [204] * 20
    assert statuses[20:] == [429] * 5
    assert b.rejected["rate_limited"] == 5


async def test_a_local_proxy_names_the_client(served: tuple) -> None:
    client, b = served
    # The test client connects from loopback: a proxy on the same host.
    for n in range(25):
        resp = await client.post(
            "/beacon",
            data=body({"a": 12.5}),
            headers={"Origin": ORIGIN, "X-Forwarded-For": f"127.9.9.9, 127.1.{n}.1"},
        )
        assert resp.status == 204
    assert b.window.stats("a", time.time()).prefixes == 25
