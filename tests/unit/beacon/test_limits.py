"""The limiter: per address and per prefix, in bounded memory, keeping no address."""

from __future__ import annotations

import ipaddress

from monitor.beacon.limits import ADDRESS_LIMIT, PREFIX_LIMIT, Buckets, Limit
from monitor.beacon.prefix import Blinder, client_prefix
from tests.support.beacons import address, beacons, body, send, state


def test_prefixes_are_the_24_and_the_48() -> None:
    assert client_prefix("127.3.4.5") == "127.3.4.0/24"
    assert client_prefix("::ffff:127.3.4.5") == "127.3.4.0/24"  # IPv4-mapped
    assert client_prefix("::1") == "::/48"
    # An IPv6 address computed here, never contacted: its /48 keeps 48 bits.
    six = ipaddress.IPv6Address((0x2001 << 112) | (0xABCD << 96) | (0x1234 << 80) | 7)
    assert client_prefix(str(six)) == str(ipaddress.ip_network(f"{six}/48", strict=False))
    assert client_prefix(str(six)).endswith("/48")  # type: ignore[union-attr]
    assert client_prefix("not an address") is None
    assert client_prefix("") is None


def test_the_kept_keys_name_no_address() -> None:
    blind = Blinder(b"k" * 32)
    key = blind("127.0.0.1")
    assert len(key) == 16
    assert b"127" not in key
    assert Blinder(b"j" * 32)("127.0.0.1") != key  # another run, another key


def test_a_bucket_allows_its_burst_then_refills() -> None:
    buckets = Buckets(Limit(burst=3, rate=1.0))
    assert [buckets.take(b"x", 0.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.take(b"y", 0.0)  # another key has its own
    assert buckets.take(b"x", 1.0)  # one second later: one more
    assert not buckets.take(b"x", 1.0)


def test_memory_stays_bounded_under_fresh_keys() -> None:
    buckets = Buckets(Limit(burst=1, rate=0.0), max_keys=100)
    for n in range(10_000):
        buckets.take(n.to_bytes(4, "big"), float(n))
    assert len(buckets) == 100


def test_one_address_and_one_prefix_are_limited() -> None:
    b = beacons(state())
    first = [send(b, body({"a": 10}), address(7, 1), 1000.0) for _ in range(21)]
    assert first == ["ok"] * 20 + ["rate_limited"]
    ok = first.count("ok")
    assert ok == ADDRESS_LIMIT.burst
    # Other addresses of the same /24: the prefix's own bucket ends them too.
    rest = [
        send(b, body({"a": 10}), address(7, host), 1000.0)
        for host in range(2, 255)
        for _ in range(5)
    ]
    assert set(rest) == {"ok", "rate_limited"}
    taken = rest.count("ok")
    # The refused 21st beacon spent a token of its prefix as well.
    assert ok + 1 + taken == PREFIX_LIMIT.burst
    # ... while another prefix is untouched.
    assert send(b, body({"a": 10}), address(8, 1), 1000.0) == "ok"
    assert len(b.by_prefix) == 2
