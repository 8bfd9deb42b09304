"""Which resolved addresses a media probe may reach, with and without ``allow_private``.

An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, Teredo) is
judged by that IPv4 address: a public server must not make the monitor
probe 10.0.0.1 by writing it as ``2002:a00:1::``. With ``allow_private``
(a server you run) loopback and private addresses pass in either form;
the unspecified, multicast and reserved addresses never do.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.checks.media.services import check_address

# address, refusal without allow_private, refusal with it (None: probed)
TABLE = [
    ("8.8.8.8", None, None),
    ("2606:4700::1111", None, None),
    ("10.1.2.3", "10.1.2.3 is a private address", None),
    ("100.64.0.1", "100.64.0.1 is a private address", None),
    ("fc00::1", "fc00::1 is a private address", None),
    ("127.0.0.1", "127.0.0.1 is a loopback address", None),
    ("::1", "::1 is a loopback address", None),
    ("169.254.169.254", "169.254.169.254 is a link-local address", None),
    ("fe80::1", "fe80::1 is a link-local address", None),
    ("::ffff:8.8.8.8", None, None),
    (
        "::ffff:10.0.0.1",
        "::ffff:10.0.0.1 (IPv4-mapped 10.0.0.1) is a private address",
        None,
    ),
    (
        "::ffff:127.0.0.1",
        "::ffff:127.0.0.1 (IPv4-mapped 127.0.0.1) is a loopback address",
        None,
    ),
    ("2002:808:808::1", None, None),
    ("2002:a00:1::", "2002:a00:1:: (6to4, carrying 10.0.0.1) is a private address", None),
    (
        "2002:7f00:1::1",
        "2002:7f00:1::1 (6to4, carrying 127.0.0.1) is a loopback address",
        None,
    ),
    (
        # Teredo: server 65.54.227.120, client 10.0.0.1 (the last 32 bits, inverted)
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe (Teredo, carrying 10.0.0.1) is a private address",
        None,
    ),
    ("0.0.0.0", "0.0.0.0 is the unspecified address", "0.0.0.0 is the unspecified address"),
    ("::", ":: is the unspecified address", ":: is the unspecified address"),
    ("224.0.0.1", "224.0.0.1 is a multicast address", "224.0.0.1 is a multicast address"),
    ("ff02::1", "ff02::1 is a multicast address", "ff02::1 is a multicast address"),
    ("240.0.0.1", "240.0.0.1 is a reserved address", "240.0.0.1 is a reserved address"),
    (
        "::ffff:224.0.0.1",
        "::ffff:224.0.0.1 (IPv4-mapped 224.0.0.1) is a multicast address",
        "::ffff:224.0.0.1 (IPv4-mapped 224.0.0.1) is a multicast address",
    ),
]


@pytest.mark.parametrize(("address", "refused", "refused_allowing_private"), TABLE)
def test_each_kind_of_address(
    address: str, refused: str | None, refused_allowing_private: str | None
) -> None:
    assert check_address(address, allow_private=False) == refused
    assert check_address(address, allow_private=True) == refused_allowing_private


def _forms(v4: ipaddress.IPv4Address) -> list[str]:
    """``v4`` written as IPv6: IPv4-mapped, 6to4, and as a Teredo client."""
    n = int(v4)
    return [
        f"::ffff:{v4}",
        str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1)),
        str(ipaddress.IPv6Address((0x20010000 << 96) | (0x41360000 << 64) | (n ^ 0xFFFFFFFF))),
    ]


@given(st.ip_addresses(v=4), st.booleans())
def test_an_ipv4_address_in_ipv6_clothing_is_judged_as_itself(
    v4: ipaddress.IPv4Address, allow_private: bool
) -> None:
    plain = check_address(str(v4), allow_private)
    for form in _forms(v4):
        wrapped = check_address(form, allow_private)
        if plain is not None:
            # refused as the IPv4 address would be, saying what it carries
            assert wrapped is not None
            assert wrapped.endswith(plain.removeprefix(str(v4)))
            assert str(v4) in wrapped
        elif form.startswith("::ffff:"):
            assert wrapped is None
