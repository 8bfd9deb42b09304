"""``serve``'s port under abuse: limits on connections, request heads and idle time,
and file descriptors kept for probing.

- Each connection must send a complete request head within ``IDLE_TIMEOUT``
  of connecting (or of its last answer), else it is closed: idle sockets,
  slowloris heads and half-sent requests all end there (aiohttp's keep-alive
  timer, which runs from the connection's start).
- A request line or a header line over ``MAX_LINE`` bytes, or more than
  ``MAX_HEADERS`` headers, is answered 400 (aiohttp's parser).
- At most ``max_connections`` are open at once; more are answered 503 and
  closed at once, so that idle clients can never take the file descriptors
  the probes need.
- At start, the soft ``RLIMIT_NOFILE`` is raised toward the hard limit;
  the connection cap is what is left of it after the probes' share
  (``FDS_PER_LADDER`` for each ladder that may run at once) and a reserve.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web

__all__ = [
    "FDS_PER_LADDER",
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_HEADERS",
    "MAX_LINE",
    "FdBudget",
    "fd_budget",
    "handler_args",
    "listen",
    "share",
]

log = logging.getLogger(__name__)

# Seconds a connection may stay without a complete request head.
IDLE_TIMEOUT: Final = 10.0
# Bytes of a request line or of one header line; headers per request.
MAX_LINE: Final = 8190
MAX_HEADERS: Final = 64
# Connections to serve's port at most (fewer when the file limit is low).
MAX_CONNECTIONS: Final = 1000
# File descriptors one ladder may hold: the page's connection, and for the
# token matrix up to six signalling streams at once (main, three refusals,
# the moderator case and the other-room case), with a DNS socket.
FDS_PER_LADDER: Final = 8
# Kept free besides: logs, the state file, DNS, webhooks, the command.
RESERVE: Final = 64
# Fewer connections than this and the limit is reported as too low.
MIN_CONNECTIONS: Final = 32


def handler_args() -> dict[str, Any]:
    """aiohttp's request-handler settings for serve's limits."""
    return {
        "keepalive_timeout": IDLE_TIMEOUT,
        "max_line_size": MAX_LINE,
        "max_field_size": MAX_LINE,
        "max_headers": MAX_HEADERS,
        "lingering_time": 2.0,
    }


@dataclass(frozen=True, slots=True)
class FdBudget:
    """How the open-file limit is shared out."""

    limit: int  # the soft RLIMIT_NOFILE now
    probing: int  # kept for ladders
    connections: int  # serve's port may hold this many
    raised_from: int | None = None  # the soft limit before it was raised
    warning: str | None = None


def fd_budget(ladders: int) -> FdBudget:
    """Raise the soft file limit toward the hard one, then share it out (``share``).

    ``ladders`` is how many ladders may run at once (the schedule's
    ``concurrency`` plus ``probe.concurrency``).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ladders * FDS_PER_LADDER + RESERVE + MAX_CONNECTIONS
    raised_from = None
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                raised_from, soft = soft, target
            except (ValueError, OSError):
                pass
    limit = wanted if soft == resource.RLIM_INFINITY else soft
    budget = share(ladders, limit)
    return FdBudget(budget.limit, budget.probing, budget.connections, raised_from, budget.warning)


def share(ladders: int, limit: int) -> FdBudget:
    """A limit of ``limit`` descriptors shared between probing, a reserve and connections."""
    probing = ladders * FDS_PER_LADDER
    wanted = probing + RESERVE + MAX_CONNECTIONS
    connections = max(0, min(MAX_CONNECTIONS, limit - probing - RESERVE))
    warning = None
    if connections < MIN_CONNECTIONS:
        connections = max(connections, min(MIN_CONNECTIONS, limit // 8))
        warning = (
            f"the open-file limit ({limit}) is too low for {ladders} ladders at once "
            f"(they may need {probing} file descriptors, and {RESERVE} are kept besides): "
            f"raise it (ulimit -n, LimitNOFILE=) to {wanted} or lower concurrency"
        )
    return FdBudget(limit, probing, connections, None, warning)


class _Refuse(asyncio.Protocol):
    """Over the cap: a 503 and the connection closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.WriteTransport subclasses
        writer = cast(asyncio.WriteTransport, transport)
        try:
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                b"Retry-After: 5\r\nContent-Length: 0\r\n\r\n"
            )
        finally:
            transport.close()


class _Guarded:
    """A protocol factory that hands out aiohttp's handlers up to a cap."""

    def __init__(self, server: web.Server, cap: int) -> None:
        self.server = server
        self.cap = cap
        self.refused = 0

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.server.connections) >= self.cap:
            self.refused += 1
            return _Refuse()
        protocol: asyncio.BaseProtocol = self.server()
        return protocol


async def listen(
    runner: web.AppRunner, host: str, port: int, cap: int
) -> tuple[asyncio.AbstractServer, int]:
    """Listen for ``runner``'s app with at most ``cap`` connections; the server and its port."""
    server = runner.server
    assert server is not None, "set the runner up first"
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(
        _Guarded(server, cap), host, port, reuse_address=True, backlog=128
    )
    sockets = listening.sockets or ()
    bound = sockets[0].getsockname()[1] if sockets else port
    return listening, int(bound)
