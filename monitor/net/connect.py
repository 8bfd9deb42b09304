"""A timed connection: resolve, TCP connect and TLS handshake, each its own phase.

The phase ends are taken where the loop learns of them, not where the
waiting coroutine resumes (which also counts however long the loop was busy
with other ladders): ``connect`` ends when the loop sees the socket
writable, and bytes are noted as they reached the socket: the transport
(``monitor.net.transport``) reads each chunk with the kernel's receive time,
so an answer that waited while the loop was busy is still timed when it
came. The ``tls`` phase starts when the connection was made, so the loop's
delay in resuming falls in ``tls``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, SupportsIndex

from monitor.model import CertInfo
from monitor.net.addresses import Reach, refused
from monitor.net.errors import NetError, connect_failure, tls_failure
from monitor.net.resolve import Resolver
from monitor.net.transport import StampedTransport, connect

__all__ = [
    "MAX_LINE",
    "Connection",
    "Phases",
    "TimedReader",
    "cert_info",
    "make_ssl_context",
    "open_connection",
]

# The longest line (HTTP header line, status line) a reader accepts.
MAX_LINE: Final = 64 * 1024

# Names resolved without configured name servers: the system's resolver.
_SYSTEM: Final = Resolver(system=True)


class Phases(Protocol):
    """Where a connection's phase times go (e.g. an HTTP fetch)."""

    current: str

    def add(self, phase: str, seconds: float) -> None: ...


class TimedReader(asyncio.StreamReader):
    """A stream reader that notes when bytes arrive.

    ``feed_data`` runs inside the protocol's ``data_received``, in the loop's
    read callback; the time is the transport's stamp of the chunk (when it
    reached the socket), else the moment of the callback.
    """

    arrived: float | None = None  # the first bytes since the last reset
    last: float | None = None  # the latest bytes
    source: StampedTransport | None = None  # whose stamps the chunks carry

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        stamp = self.source.arrived if self.source is not None else None
        now = time.monotonic() if stamp is None else stamp
        if self.arrived is None:
            self.arrived = now
        self.last = now
        super().feed_data(data)


@dataclass(slots=True)
class Connection:
    """An open connection, TLS done when asked for."""

    reader: TimedReader
    writer: asyncio.StreamWriter
    # How long the TCP connect took: one network round trip.
    rtt: float
    transport: StampedTransport

    def abort(self) -> None:
        self.transport.abort()


async def _open(
    addr: str, port: int, limit: int
) -> tuple[TimedReader, asyncio.StreamWriter, StampedTransport, float]:
    """``asyncio.open_connection`` on a stamped transport; also when the connection was made."""
    loop = asyncio.get_running_loop()
    reader = TimedReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, connected = await connect(addr, port, protocol)
    reader.source = transport
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer, transport, connected


async def open_connection(
    resolver: Resolver | None,
    host: str,
    port: int,
    phases: Phases,
    *,
    tls: ssl.SSLContext | None = None,
    limit: int = MAX_LINE,
    reach: Reach | None = None,
) -> Connection:
    """Resolve ``host``, connect to its first address that answers, then TLS when
    ``tls`` is given (checking the certificate against ``host``).

    With ``reach``, an address it refuses is not connected to (judged here,
    after resolution, on the very address the socket would go to); when
    every address is refused, ``private_address``. Adds the ``resolve``,
    ``connect`` and ``tls`` phases to ``phases`` (also when they fail) and
    raises ``NetError`` for the server's faults.
    """
    phases.current = "resolve"
    t0 = time.monotonic()
    try:
        addrs = await (resolver or _SYSTEM).resolve(host, port)
    finally:
        t1 = time.monotonic()
        phases.add("resolve", t1 - t0)
    phases.current = "connect"
    errors: list[tuple[str, OSError]] = []
    refusals: list[NetError] = []
    for addr in addrs:
        refusal = refused(reach, host, port, addr)
        if refusal is not None:
            refusals.append(refusal)
            continue
        attempt = time.monotonic()
        try:
            reader, writer, transport, connected = await _open(addr, port, limit)
        except OSError as exc:
            errors.append((addr, exc))
            continue
        break
    else:
        phases.add("connect", time.monotonic() - t1)
        if refusals and not errors:
            raise refusals[0]
        raise connect_failure(host, port, errors)
    phases.add("connect", connected - t1)
    conn = Connection(reader, writer, max(0.0, connected - attempt), transport)
    if tls is not None:
        phases.current = "tls"
        try:
            await transport.start_tls(tls, server_hostname=host)
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            conn.abort()
            raise NetError(*tls_failure(exc)) from None
        except BaseException:  # a timeout or cancellation: nothing may stay open
            conn.abort()
            raise
        phases.add("tls", time.monotonic() - connected)
    return conn


def make_ssl_context(verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    """A client context: system trust store (or ``ca_file``), TLS 1.2 or newer."""
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# Certificates seen lately, by a digest of their DER bytes: a server shows the
# same certificate at every probe, and parsing it (subject and issuer as
# RFC 4514 text) costs more than the rest of the probe's own Python work.
_CERTS: Final[OrderedDict[bytes, tuple[float, str, str]]] = OrderedDict()
_CERTS_KEPT: Final = 4096


def _parse_cert(der: bytes) -> tuple[float, str, str] | None:
    key = hashlib.blake2b(der, digest_size=16).digest()
    known = _CERTS.get(key)
    if known is not None:
        _CERTS.move_to_end(key)
        return known
    from cryptography import x509  # imported lazily: only TLS servers need it

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    facts = (
        cert.not_valid_after_utc.timestamp(),
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
    )
    _CERTS[key] = facts
    if len(_CERTS) > _CERTS_KEPT:
        _CERTS.popitem(last=False)
    return facts


def cert_info(writer: asyncio.StreamWriter) -> CertInfo | None:
    """The peer certificate of a TLS connection, as the report shows it."""
    sslobj = writer.get_extra_info("ssl_object")
    if not isinstance(sslobj, ssl.SSLObject):
        return None
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None
    facts = _parse_cert(der)
    if facts is None:
        return None
    not_after, subject, issuer = facts
    return CertInfo(
        not_after=not_after, tls_version=sslobj.version() or "", subject=subject, issuer=issuer
    )
