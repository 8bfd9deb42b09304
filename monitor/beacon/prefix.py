"""A client's network prefix (/24 or /48) and the keyed hashes that stand for it.

The address itself is used for these two computations and then dropped:
what the limiter and the window keep is a BLAKE2b hash under a random key
made at start and never written anywhere, so the kept bytes name no
address, and they mean nothing after a restart.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets

__all__ = ["Blinder", "client_prefix"]


def client_prefix(address: str) -> str | None:
    """The /24 of an IPv4 address or the /48 of an IPv6 one; None when not an address.

    An IPv4-mapped IPv6 address counts as the IPv4 address it carries.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


class Blinder:
    """Keyed hashes of addresses and prefixes (16 bytes; the key lives in memory only)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def __call__(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode(), key=self._key, digest_size=16).digest()
