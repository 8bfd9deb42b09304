"""The one address policy (``monitor.net.addresses``), as a pure function.

Which resolved addresses a probe may reach, with and without
``allow_private``. An IPv6 address that carries an IPv4 one (IPv4-mapped,
6to4, Teredo) is judged by that IPv4 address: a public server must not make
the monitor reach a private address by writing it in IPv6 clothing. With
``allow_private`` (a server you run) loopback and private addresses pass in
either form; the unspecified, multicast and reserved addresses never do.

No address off this machine is written here: the ones the table needs are
computed at runtime from their bytes, and nothing here opens a socket.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Reason
from monitor.net.addresses import Reach, check_address, refused


def v4(*octets: int) -> str:
    """An IPv4 address from its bytes."""
    return str(ipaddress.IPv4Address(bytes(octets)))


def v6(*groups: int) -> str:
    """An IPv6 address from its eight 16-bit groups."""
    return str(ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups)))


def sixtofour(address: str) -> str:
    return str(ipaddress.IPv6Address((0x2002 << 112) | (int(ipaddress.IPv4Address(address)) << 80)))


def teredo(address: str) -> str:
    """A Teredo address whose client is ``address`` (the last 32 bits, inverted)."""
    n = int(ipaddress.IPv4Address(address))
    server = int(ipaddress.IPv4Address(v4(65, 54, 227, 120)))
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (server << 64) | (n ^ 0xFFFFFFFF)))


PRIVATE = v4(10, 1, 2, 3)
PRIVATE_2 = v4(10, 0, 0, 1)
SHARED = v4(100, 64, 0, 1)  # carrier-grade NAT
METADATA = v4(169, 254, 169, 254)
PUBLIC = v4(8, 8, 8, 8)
PUBLIC_6 = v6(0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111)
UNIQUE_LOCAL = v6(0xFC00, 0, 0, 0, 0, 0, 0, 1)
LINK_LOCAL_6 = v6(0xFE80, 0, 0, 0, 0, 0, 0, 1)
MULTICAST = v4(224, 0, 0, 1)
MULTICAST_6 = v6(0xFF02, 0, 0, 0, 0, 0, 0, 1)
RESERVED = v4(240, 0, 0, 1)

# address, refusal without allow_private, refusal with it (None: probed)
TABLE = [
    (PUBLIC, None, None),
    (PUBLIC_6, None, None),
    (PRIVATE, f"{PRIVATE} is a private address", None),
    (SHARED, f"{SHARED} is a private address", None),
    (UNIQUE_LOCAL, f"{UNIQUE_LOCAL} is a private address", None),
    ("127.0.0.1", "127.0.0.1 is a loopback address", None),
    ("127.0.0.2", "127.0.0.2 is a loopback address", None),
    ("::1", "::1 is a loopback address", None),
    (METADATA, f"{METADATA} is a link-local address", None),
    (LINK_LOCAL_6, f"{LINK_LOCAL_6} is a link-local address", None),
    (f"::ffff:{PUBLIC}", None, None),
    (
        f"::ffff:{PRIVATE_2}",
        f"::ffff:{PRIVATE_2} (IPv4-mapped {PRIVATE_2}) is a private address",
        None,
    ),
    (
        "::ffff:127.0.0.1",
        "::ffff:127.0.0.1 (IPv4-mapped 127.0.0.1) is a loopback address",
        None,
    ),
    (sixtofour(PUBLIC), None, None),
    (
        sixtofour(PRIVATE_2),
        f"{sixtofour(PRIVATE_2)} (6to4, carrying {PRIVATE_2}) is a private address",
        None,
    ),
    (
        sixtofour("127.0.0.1"),
        f"{sixtofour('127.0.0.1')} (6to4, carrying 127.0.0.1) is a loopback address",
        None,
    ),
    (
        teredo(PRIVATE_2),
        f"{teredo(PRIVATE_2)} (Teredo, carrying {PRIVATE_2}) is a private address",
        None,
    ),
    ("0.0.0.0", "0.0.0.0 is the unspecified address", "0.0.0.0 is the unspecified address"),
    ("::", ":: is the unspecified address", ":: is the unspecified address"),
    (MULTICAST, f"{MULTICAST} is a multicast address", f"{MULTICAST} is a multicast address"),
    (
        MULTICAST_6,
        f"{MULTICAST_6} is a multicast address",
        f"{MULTICAST_6} is a multicast address",
    ),
    (RESERVED, f"{RESERVED} is a reserved address", f"{RESERVED} is a reserved address"),
    (
        f"::ffff:{MULTICAST}",
        f"::ffff:{MULTICAST} (IPv4-mapped {MULTICAST}) is a multicast address",
        f"::ffff:{MULTICAST} (IPv4-mapped {MULTICAST}) is a multicast address",
    ),
]


@pytest.mark.parametrize(("address", "refused", "refused_allowing_private"), TABLE)
def test_each_kind_of_address(
    address: str, refused: str | None, refused_allowing_private: str | None
) -> None:
    assert check_address(address, allow_private=False) == refused
    assert check_address(address, allow_private=True) == refused_allowing_private


def _forms(address: ipaddress.IPv4Address) -> list[str]:
    """``address`` written as IPv6: IPv4-mapped, 6to4, and as a Teredo client."""
    return [f"::ffff:{address}", sixtofour(str(address)), teredo(str(address))]


@given(st.ip_addresses(v=4), st.booleans())
def test_an_ipv4_address_in_ipv6_clothing_is_judged_as_itself(
    address: ipaddress.IPv4Address, allow_private: bool
) -> None:
    plain = check_address(str(address), allow_private)
    for form in _forms(address):
        wrapped = check_address(form, allow_private)
        if plain is not None:
            # refused as the IPv4 address would be, saying what it carries
            assert wrapped is not None
            assert wrapped.endswith(plain.removeprefix(str(address)))
            assert str(address) in wrapped
        elif form.startswith("::ffff:"):
            assert wrapped is None


# -- a server's rule: public addresses only, except its own host -----------------------


@pytest.mark.parametrize("host", ["meet.example", "MEET.example.", "[meet.example]"])
def test_the_configured_host_is_exempt(host: str) -> None:
    assert refused(Reach("meet.example"), host, 443, "127.0.0.1") is None


def test_an_ip_literal_is_the_same_host_however_written() -> None:
    reach = Reach("::1")
    assert reach.exempts("[0:0::1]")
    assert not reach.exempts("127.0.0.1")
    # the own host 127.0.0.1 in IPv4-mapped clothing is another host, judged by its address
    assert not Reach("127.0.0.1").exempts("::ffff:127.0.0.1")


def test_another_host_on_a_non_public_address_is_refused_naming_both() -> None:
    failure = refused(Reach("meet.example"), "::ffff:127.0.0.1", 5280, "::ffff:127.0.0.1")
    assert failure is not None
    assert failure.reason is Reason.PRIVATE_ADDRESS
    assert failure.detail.startswith(
        "[::ffff:127.0.0.1]:5280 leads to ::ffff:127.0.0.1 (IPv4-mapped 127.0.0.1) is a loopback"
    )
    assert refused(Reach("meet.example"), "other.example", 443, PUBLIC) is None
    assert refused(None, "other.example", 443, "127.0.0.2") is None, "self_hosted: no rule"
