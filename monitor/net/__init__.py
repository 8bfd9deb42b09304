"""The one network layer under the probes (HTTP, XMPP, media).

Modelled on httpx's ``_transports/``: one way to open a connection, errors
mapped at one boundary, policy (redirects, origins, tokens) left to the
callers above.

- ``resolve``: the one ``Resolver`` (c-ares with the configured name
  servers, or the system's); every probe resolves through it, aiohttp
  included (``aio.AiohttpResolver``);
- ``connect``: ``open_connection``, a timed resolve, TCP connect and TLS
  handshake; ``TimedReader`` notes when bytes reached the socket;
- ``transport``: the socket transport under it, whose reads carry the
  kernel's receive stamp (``SO_TIMESTAMPNS``), TLS inside it, so a busy
  loop does not stretch the phases that end on the server's answer;
- ``errors``: ``NetError``, the one exception class for the server's faults,
  a ``Reason`` and an escaped, bounded detail; ``tls_failure`` names what a
  failed handshake means;
- ``addresses``: the one address policy (``check_address``, ``Reach``):
  which addresses a server's URLs may lead to, judged on each resolved
  address before connecting;
- ``http``: the HTTP/1.1 client on top of ``open_connection`` (``HttpClient``:
  keep-alive, redirects as its own policy, bounded headers and bodies), used
  by the web family and the server sources;
- ``websocket``: the WebSocket client of the signalling ladder;
- ``aio``: aiohttp through its public API (BOSH).

It takes plain arguments and imports nothing of ``monitor.config``.

The decision on XMPP: the WebSocket moved onto the project's own transport.
On aiohttp, the time a frame arrived (the signalling ping's end) could only
be had by replacing the connector's private protocol factory
(``TCPConnector._factory``) and reading the response's private ``_conn``:
aiohttp's public trace hooks say nothing about WebSocket frames, and its
public ``WebSocketReader`` needs its internal flow-control queue, whose
signature changes between minor versions. A client WebSocket without
extensions is small (``websocket.py``, about 300 lines) and gets the same
timed connection, resolver and error mapping as HTTP. BOSH stays on aiohttp,
through public API only (an ``AbstractResolver``, a ``TraceConfig`` that
refuses redirects, the public exception classes): it needs no frame timing,
and its long polls need a pooled HTTP client with concurrent requests.
"""

from monitor.net.connect import (
    MAX_LINE,
    Connection,
    Phases,
    TimedReader,
    cert_info,
    make_ssl_context,
    open_connection,
)
from monitor.net.errors import NetError, connect_failure, dns_failure, tls_failure
from monitor.net.resolve import Resolver, literal

__all__ = [
    "MAX_LINE",
    "Connection",
    "NetError",
    "Phases",
    "Resolver",
    "TimedReader",
    "cert_info",
    "connect_failure",
    "dns_failure",
    "literal",
    "make_ssl_context",
    "open_connection",
    "tls_failure",
]
