"""The one DNS resolver of the probes: HTTP, XMPP (WebSocket and BOSH) and media.

It asks the configured name servers through c-ares (``aiodns``), or the
system's resolver (``getaddrinfo`` in a thread) when none is made. An IP
address literal is its own answer, without a query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

import aiodns
import aiodns.error

from monitor.model import Reason
from monitor.net.errors import NetError, dns_failure

__all__ = ["Resolver", "literal"]

# How long c-ares waits for one answer, and how often it asks.
TIMEOUT = 5.0
TRIES = 2


def literal(host: str) -> str | None:
    """``host`` itself when it is an IP address, else None."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


class Resolver:
    """Names to addresses; one per Runner, shared by every ladder.

    ``nameservers`` (``host`` or ``host:port``): ask these; empty asks the
    system's configuration through c-ares; ``system=True`` uses the system's
    ``getaddrinfo`` instead (nothing to close then).
    """

    def __init__(self, nameservers: Sequence[str] = (), *, system: bool = False) -> None:
        self._dns: aiodns.DNSResolver | None = None
        if not system:
            self._dns = aiodns.DNSResolver(
                nameservers=list(nameservers) or None, timeout=TIMEOUT, tries=TRIES
            )

    async def close(self) -> None:
        if self._dns is not None:
            await self._dns.close()

    async def resolve(self, host: str, port: int, kind: int = socket.SOCK_STREAM) -> list[str]:
        """The addresses of ``host``, without duplicates, in the resolver's order.

        Raises ``NetError`` (``dns_error``) when there is none.
        """
        address = literal(host)
        if address is not None:
            return [address]
        try:
            if self._dns is None:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=kind)
                addrs = [str(info[4][0]) for info in infos]
            else:
                result = await self._dns.getaddrinfo(host, port=port, type=kind)
                addrs = [
                    node.addr[0].decode() if isinstance(node.addr[0], bytes) else str(node.addr[0])
                    for node in result.nodes
                ]
        except aiodns.error.DNSError as exc:
            raise dns_failure(host, exc.args[1] if len(exc.args) > 1 else str(exc)) from None
        except socket.gaierror as exc:
            raise dns_failure(host, exc.strerror or str(exc)) from None
        if not addrs:
            raise NetError(Reason.DNS_ERROR, f"{host} has no address")
        return list(dict.fromkeys(addrs))
