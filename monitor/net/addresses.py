"""Which addresses a probe may connect to: the one address policy.

A server that is not the operator's own (``kind: public`` or ``jaas``, a
candidate of ``rank --discover``, a URL probed on demand) hands the monitor
URLs: a redirect of its page, config.js's ``websocket`` and ``bosh``, its
media services. None of them may lead the monitor to an address a browser
on the public Internet could not reach (the monitor's own machine, its
network, the cloud's metadata service), except the configured URL's own
host, which the operator named.

- ``check_address``: why one address is not public (loopback, private,
  link-local, unique-local, unspecified, multicast, reserved; an IPv6
  address carrying an IPv4 one judged by it), a pure function;
- ``Reach``: the rule for one server's ladder (its own host is exempt);
  ``open_connection`` judges every address it is about to connect to, after
  resolution, so a name that resolves elsewhere the second time (DNS
  rebinding) gains nothing;
- ``reaching``/``current``: the rule for aiohttp's connections (BOSH), whose
  session is shared by every ladder: set around a request, read by the
  session's socket factory (``monitor.net.aio``) where the socket is made.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from monitor.model import Reason
from monitor.net.errors import NetError

__all__ = ["Reach", "check_address", "current", "reaching", "refused"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _kind(ip: _Address) -> tuple[str, bool] | None:
    """What ``ip`` is when it is not a global unicast address, and whether that
    is refused even with ``allow_private``; None for a global unicast address."""
    if ip.is_unspecified:
        return "the unspecified address", True
    if ip.is_multicast:
        return "a multicast address", True
    if ip.is_loopback:
        return "a loopback address", False
    if ip.is_link_local:
        return "a link-local address", False
    if ip.is_reserved:
        return "a reserved address", True
    if not ip.is_global:
        return "a private address", False
    return None


def check_address(address: str, allow_private: bool) -> str | None:
    """Why the resolved ``address`` must not be probed, or None to probe it.

    An IPv6 address that carries an IPv4 one is judged by it: IPv4-mapped
    (``::ffff:10.0.0.1``, which the socket reaches as 10.0.0.1), 6to4
    (``2002:a00:1::``) and Teredo (its client's address).
    """
    ip: _Address = ipaddress.ip_address(address.partition("%")[0])
    what = address
    found: tuple[str, bool] | None = None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
            what = f"{address} (IPv4-mapped {ip})"
        else:
            carried = (
                ("6to4", ip.sixtofour),
                ("Teredo", ip.teredo[1] if ip.teredo is not None else None),
            )
            for how, inner in carried:
                inner_kind = _kind(inner) if inner is not None else None
                if inner_kind is not None:
                    what = f"{address} ({how}, carrying {inner})"
                    found = inner_kind
                    break
    found = found or _kind(ip)
    if found is None:
        return None
    kind, always = found
    if always or not allow_private:
        return f"{what} is {kind}"
    return None


def _same_host(a: str, b: str) -> bool:
    a, b = a.lower().strip("[]").rstrip("."), b.lower().strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


@dataclass(frozen=True, slots=True)
class Reach:
    """Public addresses only, except for ``own_host`` (the configured URL's host)."""

    own_host: str

    def exempts(self, host: str) -> bool:
        """Whether connections to ``host`` (a name or a literal) may go anywhere."""
        return _same_host(host, self.own_host)


def refused(reach: Reach | None, host: str, port: int, address: str) -> NetError | None:
    """The failure of connecting to ``address`` for ``host``, or None when it may."""
    if reach is None or reach.exempts(host):
        return None
    why = check_address(address, allow_private=False)
    if why is None:
        return None
    shown = f"[{host}]" if ":" in host else host
    return NetError(
        Reason.PRIVATE_ADDRESS,
        f"{shown}:{port} leads to {why}; a server that is not self_hosted may lead "
        "the monitor only to public addresses (or its own host)",
    )


_CURRENT: Final[ContextVar[Reach | None]] = ContextVar("reach", default=None)


def current() -> Reach | None:
    """The rule for connections made in this context (aiohttp's)."""
    return _CURRENT.get()


@contextlib.contextmanager
def reaching(reach: Reach | None) -> Iterator[None]:
    """Connections made inside (and in tasks started inside) follow ``reach``."""
    token = _CURRENT.set(reach)
    try:
        yield
    finally:
        _CURRENT.reset(token)
