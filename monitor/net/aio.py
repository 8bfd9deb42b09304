"""aiohttp on the network layer, through aiohttp's public API only (BOSH).

- ``AiohttpResolver``: the project's one ``Resolver`` behind aiohttp's
  ``aiohttp.abc.AbstractResolver``, so an aiohttp session resolves names
  where the probes do (the configured name servers);
- ``client_session``: the session BOSH long polls go over; its sockets are
  made by ``_socket``, which refuses an address the request's address rule
  (``monitor.net.addresses.reaching``) does not allow. That is judged where
  the socket is made, on the address it is about to connect to: aiohttp
  never asks the resolver for an IP literal, and keeps resolved names in a
  cache shared by every ladder;
- ``aiohttp_failure``: aiohttp's connection errors as a (reason, detail).
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.model import Reason
from monitor.net.addresses import check_address, current
from monitor.net.errors import NetError, tls_failure
from monitor.net.resolve import Resolver

__all__ = ["AiohttpResolver", "aiohttp_failure", "client_session"]


class AiohttpResolver(AbstractResolver):
    """The project's resolver for aiohttp; the owner of ``resolver`` closes it."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addrs = await self._resolver.resolve(host, port)
        except NetError as exc:
            # aiohttp reports an OSError from a resolver as ClientConnectorDNSError.
            raise OSError(exc.detail) from None
        results = [
            ResolveResult(
                hostname=host,
                host=addr,
                port=port,
                family=socket.AF_INET6 if ":" in addr else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for addr in addrs
        ]
        if family in (socket.AF_INET, socket.AF_INET6):
            results = [r for r in results if r["family"] == family]
        if not results:
            raise OSError(f"{host} has no address")
        return results

    async def close(self) -> None:
        pass


class AddressRefused(OSError):
    """A socket not made: the address is not public and the request's rule wants one."""

    def __init__(self, detail: str) -> None:
        # One text for every refusal, so that aiohappyeyeballs, when every
        # address of a name was refused, raises one of them and not a summary.
        super().__init__("address refused: not a public address")
        self.detail = detail


def _socket(info: tuple[int, int, int, str, tuple[Any, ...]]) -> socket.socket:
    """aiohttp's socket factory: a socket, unless the address is refused."""
    family, kind, proto, _, address = info
    if current() is not None:
        why = check_address(str(address[0]), allow_private=False)
        if why is not None:
            raise AddressRefused(why)
    return socket.socket(family=family, type=kind, proto=proto)


def client_session(
    resolver: Resolver, trace_configs: list[aiohttp.TraceConfig] | None = None
) -> aiohttp.ClientSession:
    """A session whose every request is its own connection, resolved by ``resolver``.

    No overall timeout: each probe bounds its own time.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            resolver=AiohttpResolver(resolver),
            limit=0,
            force_close=True,
            socket_factory=_socket,
        ),
        timeout=aiohttp.ClientTimeout(total=None),
        trace_configs=trace_configs,
    )


def aiohttp_failure(
    exc: aiohttp.ClientError, host: str | None, port: int | None, what: str
) -> NetError:
    """An aiohttp connection failure as a reason an operator can act on."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefused):
        return NetError(
            Reason.PRIVATE_ADDRESS,
            f"{host}:{port} leads to {exc.os_error.detail}; a server that is not self_hosted "
            "may lead the monitor only to public addresses (or its own host)",
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return NetError(*tls_failure(exc.certificate_error))
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return NetError(*tls_failure(exc.os_error))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return NetError(Reason.DNS_ERROR, f"cannot resolve {host}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        reason = Reason.CONNECT_REFUSED if refused else Reason.CONNECT_ERROR
        return NetError(reason, f"cannot connect to {host}:{port}")
    # Never the exception's text: aiohttp puts the URL in it, with the token.
    return NetError(Reason.CONNECTION_CLOSED, f"{what} failed: {type(exc).__name__}")
