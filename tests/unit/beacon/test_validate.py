"""Forged beacons: each refused with its reason, counted, and kept out of the window."""

from __future__ import annotations

import pytest

from monitor.beacon import Rejected
from monitor.beacon.validate import MAX_BODY, parse
from tests.support.beacons import ORIGIN, address, beacons, body, state

MEMBERS = {"moodle": {"a": "https://a.example/favicon.ico", "b": "https://b.example/favicon.ico"}}


def members(pool: str) -> dict[str, str] | None:
    return MEMBERS.get(pool)


def test_a_good_beacon_is_read_in_seconds() -> None:
    beacon = parse(body({"a": 41.5, "b": 88}, region="eu-west"), members, ("eu-west",))
    assert beacon.pool == "moodle"
    assert beacon.region == "eu-west"
    assert beacon.rtt == (("a", 0.0415), ("b", 0.088))
    assert parse(body({"a": 1}), members).region == "default"
    # A region of the right shape that beacon.regions does not list: kept as "default".
    assert parse(body({"a": 1}, region="eu-east"), members, ("eu-west",)).region == "default"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (body({"nobody": 10.0}), "unknown_server"),
        (body({"a": 10.0}, pool="other"), "unknown_pool"),
        (body({"a": -5}), "bad_number"),
        (body({"a": 0}), "bad_number"),
        (b'{"pool": "moodle", "rtt": {"a": NaN}}', "malformed"),
        (b'{"pool": "moodle", "rtt": {"a": Infinity}}', "malformed"),
        (b'{"pool": "moodle", "rtt": {"a": 1e400}}', "bad_number"),
        (b'{"pool": "moodle", "rtt": {"a": ' + b"9" * 400 + b"}}", "bad_number"),
        (body({"a": 60_001}), "bad_number"),
        (body({"a": "12"}), "bad_number"),
        (body({"a": True}), "bad_number"),
        (body({"a": 10}, region="Not A Region"), "bad_region"),
        (body({"a": 10}, region="all"), "bad_region"),
        (b"\xff\xfe", "malformed"),
        (b"[1, 2]", "malformed"),
        (b'{"pool": "moodle", "rtt": {}}', "malformed"),
        (b'{"pool": "moodle", "rtt": {"a": 1}, "page": "/course/view.php?id=7"}', "malformed"),
        (b"[" * 1000 + b"]" * 1000, "malformed"),
        (b" " * (MAX_BODY + 1), "too_large"),
    ],
)
def test_forged_bodies_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse(raw, members)
    assert caught.value.reason == reason


def test_refusals_are_counted_and_keep_the_window_empty() -> None:
    s = state()
    b = beacons(s)
    cases = [
        (body({"a": 10}), "https://evil.example", "origin"),
        (body({"a": 10}), None, "origin"),
        (body({"a": 10}), ORIGIN + ":8443", "origin"),
        (b"x" * (1 << 20), ORIGIN, "too_large"),
        (body({"c": 10}), ORIGIN, "unknown_server"),
        (body({"a": -1}), ORIGIN, "bad_number"),
    ]
    for n, (raw, origin, reason) in enumerate(cases):
        with pytest.raises(Rejected) as caught:
            b.receive(raw, origin, address(n), 1000.0)
        assert caught.value.reason == reason
    assert b.rejected == {
        "origin": 3,
        "too_large": 1,
        "unknown_server": 1,
        "bad_number": 1,
    }
    assert b.accepted == 0
    assert b.window.stats("a", 1000.0).samples == 0
    assert b.window.stats("b", 1000.0).samples == 0
