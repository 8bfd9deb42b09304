"""A small HTTP/1.1 client that times every phase of a request.

aiohttp's trace hooks cannot tell the TLS handshake apart from the TCP
connect, so the probe opens its own connections through the network layer
(``monitor.net.open_connection``): resolve, connect and TLS handshake are
timed separately, then one or more requests go over the same connection
(keep-alive) with first-byte and transfer times. Redirects are this
client's policy, not the network layer's.

Everything a server sends is treated as hostile: header and body sizes are
capped, compressed bodies are inflated only up to the cap, and every failure
becomes a ``NetError`` carrying a reason code from the closed set.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urljoin, urlsplit

from monitor import escape
from monitor.ladder import HTTP_PHASES
from monitor.model import CertInfo, Phase, Reason
from monitor.net import (
    Connection,
    NetError,
    Resolver,
    TimedReader,
    cert_info,
    make_ssl_context,
    open_connection,
    tls_failure,
)
from monitor.net.addresses import Reach

__all__ = [
    "Fetch",
    "HttpClient",
    "Response",
    "make_ssl_context",
    "origin_of",
    "tls_failure",
]

MAX_HEADER_BYTES: Final = 64 * 1024
MAX_HEADERS: Final = 100
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_DIGITS: Final = re.compile(r"[0-9]{1,18}")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,15}")


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response, after redirects."""

    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)


@dataclass(slots=True)
class Fetch:
    """Phase times of one fetch, summed over its redirects, and what came back."""

    phases: dict[str, float] = field(default_factory=dict)
    response: Response | None = None
    current: str = "resolve"

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def phase_list(self) -> tuple[Phase, ...]:
        return tuple(Phase(name, self.phases[name]) for name in HTTP_PHASES if name in self.phases)


def _first_byte(reader: TimedReader, resumed: float) -> float:
    """When the first byte of the answer arrived: noted by the reader, else ``resumed``."""
    arrived = reader.arrived
    return resumed if arrived is None else min(arrived, resumed)


class HttpClient:
    """Connections for one probe ladder; use as an async context manager.

    Keeps at most one idle connection per origin, so a ladder's requests to
    the same server share one TCP connection and one TLS handshake, as a
    browser would.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None,
        ssl_context: ssl.SSLContext,
        user_agent: str,
        max_body_bytes: int,
        max_redirects: int,
        confine_to: str | None = None,
        reach: Reach | None = None,
    ) -> None:
        self._resolver = resolver
        # Which addresses a request may go to, redirects included (monitor.net.addresses).
        self._reach = reach
        # An origin (scheme://host:port) no request may leave, redirects included.
        self._confine = confine_to
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._max_body = max_body_bytes
        self._max_redirects = max_redirects
        self._idle: dict[tuple[str, str, int], Connection] = {}
        self.cert: CertInfo | None = None
        # Time of the ladder's first successful TCP connect: one network round
        # trip, unlike the connect phase, which sums redirects and failed addresses.
        self.connect_rtt: float | None = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._idle.values():
            conn.abort()
        self._idle.clear()

    # -- connecting ------------------------------------------------------------
    async def _connect(self, scheme: str, host: str, port: int, fetch: Fetch) -> Connection:
        tls = self._ssl if scheme == "https" else None
        conn = await open_connection(
            self._resolver, host, port, fetch, tls=tls, limit=MAX_HEADER_BYTES, reach=self._reach
        )
        if self.connect_rtt is None:
            self.connect_rtt = conn.rtt
        if tls is not None and self.cert is None:
            self.cert = cert_info(conn.writer)
        return conn

    # -- requests ---------------------------------------------------------------
    async def get(self, url: str, fetch: Fetch | None = None) -> Fetch:
        """GET ``url``, following redirects; the result holds phases and response."""
        fetch = fetch or Fetch()
        seen = 0
        while True:
            try:
                response = await self._get_once(url, fetch)
            except NetError as exc:
                if exc.reason is Reason.PRIVATE_ADDRESS:
                    shown = escape.plain(_safe_url(url), 200)
                    raise NetError(exc.reason, f"{shown}: {exc.detail}") from None
                raise
            location = response.header("location")
            if response.status not in REDIRECTS or not location:
                fetch.response = response
                return fetch
            seen += 1
            if seen > self._max_redirects:
                raise NetError(
                    Reason.TOO_MANY_REDIRECTS,
                    f"more than {self._max_redirects} redirects (last to {_safe_url(location)})",
                )
            try:
                next_url = urljoin(url, location)
                parts = urlsplit(next_url)
                _ = parts.port  # raises on a bad port
            except ValueError:
                raise NetError(Reason.PROTOCOL_ERROR, "redirect to a malformed URL") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise NetError(Reason.PROTOCOL_ERROR, "redirect to a URL that is not HTTP(S)")
            if self._confine is not None and origin_of(next_url) != self._confine:
                raise NetError(
                    Reason.PROTOCOL_ERROR,
                    f"redirect to another origin ({_safe_url(next_url)}); "
                    "a server probed by URL is probed on its own origin only",
                )
            url = next_url

    async def _get_once(self, url: str, fetch: Fetch) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if ":" not in host else f"[{host}]"
        if parts.port:
            host_header += f":{parts.port}"
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {self._user_agent}\r\n"
            "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n"
        ).encode("latin-1", "replace")
        conn = self._idle.pop(key, None)
        if conn is not None:
            try:
                return await self._exchange(conn, key, request, url, fetch)
            except NetError as exc:
                # An idle connection the server closed meanwhile: retry once, fresh.
                if exc.reason is not Reason.CONNECTION_CLOSED:
                    raise
        conn = await self._connect(scheme, host, port, fetch)
        return await self._exchange(conn, key, request, url, fetch)

    async def _exchange(
        self, conn: Connection, key: tuple[str, str, int], request: bytes, url: str, fetch: Fetch
    ) -> Response:
        reusable = False
        try:
            fetch.current = "processing"
            conn.reader.arrived = None  # a kept-alive connection: time this answer
            t0 = time.monotonic()
            conn.writer.write(request)
            status, headers = await self._read_head(conn.reader)
            # processing ends at the answer's first byte, as it arrived.
            t1 = _first_byte(conn.reader, time.monotonic())
            fetch.add("processing", t1 - t0)
            fetch.current = "transfer"
            body, reusable = await self._read_body(conn.reader, status, headers)
            # transfer ends when the body's last bytes arrived.
            last = conn.reader.last
            end = time.monotonic() if last is None else min(last, time.monotonic())
            fetch.add("transfer", max(0.0, end - t1))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise NetError(Reason.CONNECTION_CLOSED, f"connection closed early: {exc}") from None
        except OSError as exc:
            raise NetError(Reason.CONNECTION_CLOSED, f"connection failed: {exc}") from None
        finally:
            if reusable and key not in self._idle:
                self._idle[key] = conn
            else:
                conn.abort()
        headers_t = tuple(headers)
        encoding = _header(headers_t, "content-encoding")
        if encoding:
            body = self._inflate(body, encoding.strip().lower())
        return Response(url=url, status=status, headers=headers_t, body=body)

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
        while True:
            line = await self._readline(reader)
            if not line:
                raise NetError(Reason.CONNECTION_CLOSED, "server closed the connection")
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise NetError(Reason.PROTOCOL_ERROR, f"not an HTTP/1.x response: {line[:60]!r}")
            status = int(parts[1])
            http10 = parts[0] == b"HTTP/1.0"
            headers: list[tuple[str, str]] = []
            total = len(line)
            while True:
                raw = await self._readline(reader)
                total += len(raw)
                if total > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
                    raise NetError(Reason.PROTOCOL_ERROR, "response headers are too large")
                if raw in (b"\r\n", b"\n"):
                    break
                if not raw:
                    raise NetError(Reason.CONNECTION_CLOSED, "connection closed in the headers")
                name, sep, value = raw.decode("latin-1").partition(":")
                if not sep:
                    raise NetError(Reason.PROTOCOL_ERROR, "malformed response header")
                headers.append((name.strip().lower(), value.strip()))
            if 100 <= status < 200:  # interim response: the real one follows
                continue
            if http10 and (_header(headers, "connection") or "").lower() != "keep-alive":
                headers.append(("connection", "close"))  # HTTP/1.0 closes by default
            return status, headers

    @staticmethod
    async def _readline(reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise NetError(Reason.PROTOCOL_ERROR, "response header line is too long") from None
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    async def _read_body(
        self, reader: asyncio.StreamReader, status: int, headers: list[tuple[str, str]]
    ) -> tuple[bytes, bool]:
        """The body and whether the connection can carry another request."""
        keep = (_header(headers, "connection") or "").lower() != "close"
        if status in (204, 304):
            return b"", keep
        cap = self._max_body
        lengths = {v.strip() for k, v in headers if k == "content-length"}
        tenc = (_header(headers, "transfer-encoding") or "").lower()
        if "chunked" in tenc:
            # With a Content-Length beside it the framing is ambiguous: read
            # by chunks, then never reuse the connection.
            return await self._read_chunked(reader, cap), keep and not lengths
        if len(lengths) > 1:
            raise NetError(Reason.PROTOCOL_ERROR, "conflicting Content-Length headers")
        if lengths:
            length = lengths.pop()
            if not _DIGITS.fullmatch(length):
                raise NetError(Reason.PROTOCOL_ERROR, f"bad Content-Length {length[:20]!r}")
            size = int(length)
            if size > cap:
                raise NetError(
                    Reason.BODY_TOO_LARGE, f"body of {size} bytes is over the cap of {cap} bytes"
                )
            return await reader.readexactly(size), keep
        data = await reader.read(cap + 1)
        chunks = [data]
        total = len(data)
        while data and total <= cap:
            data = await reader.read(cap + 1 - total)
            chunks.append(data)
            total += len(data)
        if total > cap:
            raise NetError(Reason.BODY_TOO_LARGE, f"body is over the cap of {cap} bytes")
        return b"".join(chunks), False

    async def _read_chunked(self, reader: asyncio.StreamReader, cap: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = await self._readline(reader)
            if not line:
                raise NetError(Reason.CONNECTION_CLOSED, "connection closed in a chunked body")
            size_text = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise NetError(Reason.PROTOCOL_ERROR, "malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                while (await self._readline(reader)) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > cap:
                raise NetError(Reason.BODY_TOO_LARGE, f"body is over the cap of {cap} bytes")
            chunks.append(await reader.readexactly(size))
            await self._readline(reader)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        if encoding in ("identity", ""):
            return body
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise NetError(Reason.PROTOCOL_ERROR, f"unsupported Content-Encoding {encoding!r}")
        # 47: gzip or zlib header; deflate is sometimes sent raw (-15).
        tries = (47,) if "gzip" in encoding else (47, -15)
        for wbits in tries:
            inflater = zlib.decompressobj(wbits)
            try:
                out = inflater.decompress(body, self._max_body + 1)
            except zlib.error:
                continue
            if len(out) > self._max_body:
                raise NetError(
                    Reason.BODY_TOO_LARGE,
                    f"inflated body is over the cap of {self._max_body} bytes",
                )
            return out
        raise NetError(Reason.PROTOCOL_ERROR, f"cannot decode a {encoding} body")


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, the port made explicit, for comparing origins."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _safe_url(url: str) -> str:
    """A URL fit for a message: no query (it may carry a token), bounded length."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "a malformed URL"
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    return shown[:200]
