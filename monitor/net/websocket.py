"""A WebSocket client (RFC 6455) on the timed connection, as the signalling ladder needs it.

What a browser's WebSocket does, and no more: one GET with ``Upgrade:
websocket`` that must be answered ``101`` with the right
``Sec-WebSocket-Accept`` (redirects are not followed), masked frames out,
text and binary messages in (fragmented or not) up to a bound, pings
answered, and the close handshake. No extensions are offered, so frames
never carry compressed data.

Everything the server sends is hostile: the handshake answer is bounded in
size, a frame's announced length is checked against the bound before a
byte of it is read, and text must be UTF-8. Bytes are noted as they arrive
(``arrived``), so a round trip ends when its answer was there, not when the
waiting coroutine got the loop back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import os
import ssl
import struct
from dataclasses import dataclass
from typing import Final

from monitor import escape
from monitor.model import Reason
from monitor.net.addresses import Reach
from monitor.net.connect import Connection, Phases, open_connection
from monitor.net.errors import NetError
from monitor.net.resolve import Resolver

__all__ = ["Message", "MessageType", "WebSocket"]

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD: Final = 16 * 1024  # the handshake answer's status line and headers
MAX_HEADERS: Final = 100
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class MessageType(enum.Enum):
    TEXT = "text"
    BINARY = "binary"
    CLOSE = "close"  # the server closed (or the connection ended)
    ERROR = "error"  # the server broke the protocol; the connection is done


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    data: str | bytes = ""


class _Broken(Exception):
    """The server broke the WebSocket protocol (the words say how)."""


class _Phases:
    """Phase times of the connection under the upgrade (kept for the caller)."""

    def __init__(self) -> None:
        self.current = "resolve"
        self.times: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.times[phase] = self.times.get(phase, 0.0) + seconds


def _mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return payload
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked frame (a client masks every frame it sends)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class WebSocket:
    """One WebSocket connection; make it with ``connect``."""

    def __init__(self, conn: Connection, max_message: int, protocol: str | None) -> None:
        self._conn = conn
        self._max = max_message
        self.protocol = protocol  # the sub-protocol the server chose, if any
        self.close_code: int | None = None
        self.closed = False  # no more messages will come
        self._close_sent = False
        self.phases: dict[str, float] = {}
        # Frames are read by one task into an inbox, so that a caller that stops
        # waiting (a timeout) never leaves a frame half read.
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._reading = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls,
        resolver: Resolver | None,
        *,
        secure: bool,
        host: str,
        port: int,
        target: str,
        headers: dict[str, str],
        protocols: tuple[str, ...] = (),
        ssl_context: ssl.SSLContext | None = None,
        max_message: int,
        phases: Phases | None = None,
        reach: Reach | None = None,
    ) -> WebSocket:
        """Connect and upgrade; ``target`` is the path and query.

        Raises ``NetError``: the connection's reasons (``private_address``
        for an address ``reach`` refuses), ``ws_upgrade_refused``
        for any answer but a proper ``101``, ``connection_closed`` for an
        answer that ends or is not HTTP.
        """
        if secure and ssl_context is None:
            ssl_context = ssl.create_default_context()
        timing = _Phases()
        conn = await open_connection(
            resolver,
            host,
            port,
            phases or timing,
            tls=ssl_context if secure else None,
            reach=reach,
        )
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            default = 443 if secure else 80
            host_header = f"[{host}]" if ":" in host else host
            if port != default:
                host_header += f":{port}"
            lines = [
                f"GET {target} HTTP/1.1",
                f"Host: {host_header}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
            ]
            if protocols:
                lines.append(f"Sec-WebSocket-Protocol: {', '.join(protocols)}")
            lines += [f"{name}: {value}" for name, value in headers.items()]
            conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace"))
            status, answer = await _read_head(conn)
            if status in _REDIRECTS:
                raise NetError(
                    Reason.WS_UPGRADE_REFUSED,
                    f"WebSocket upgrade answered with a redirect (HTTP {status}), "
                    "which browsers do not follow",
                )
            accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
            problem = (
                "Invalid response status"
                if status != 101
                else "Invalid upgrade header"
                if answer.get("upgrade", "").lower() != "websocket"
                else "Invalid connection header"
                if "upgrade" not in answer.get("connection", "").lower()
                else "Invalid challenge response"
                if answer.get("sec-websocket-accept", "") != accept
                else None
            )
            if problem is not None:
                raise NetError(
                    Reason.WS_UPGRADE_REFUSED,
                    f"WebSocket upgrade refused: HTTP {status} {problem}"[:200],
                )
        except BaseException:
            conn.abort()
            raise
        chosen = answer.get("sec-websocket-protocol", "").strip()
        ws = cls(conn, max_message, chosen if chosen in protocols else None)
        ws.phases = timing.times
        return ws

    def arrived(self) -> float | None:
        """When bytes last arrived (``time.monotonic``)."""
        return self._conn.reader.last

    # -- sending ------------------------------------------------------------------
    async def _send(self, opcode: int, payload: bytes) -> None:
        try:
            if self._conn.writer.transport.is_closing():
                raise ConnectionResetError("Cannot write to closing transport")
            self._conn.writer.write(_frame(opcode, payload))
            await self._conn.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise NetError(
                Reason.CONNECTION_CLOSED, f"cannot send: {escape.plain(exc, 200)}"
            ) from None

    async def send_text(self, text: str) -> None:
        await self._send(_TEXT, text.encode())

    # -- receiving ----------------------------------------------------------------
    async def _read_frame(self) -> tuple[bool, int, bytes]:
        reader = self._conn.reader
        first, second = await reader.readexactly(2)
        fin, opcode, masked, length = bool(first & 0x80), first & 0x0F, second & 0x80, second & 0x7F
        if first & 0x70:
            raise _Broken("Received frame with non-zero reserved bits")
        if opcode >= 0x8 and (not fin or length > 125):
            raise _Broken("Control frame payload cannot be larger than 125 bytes")
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        if length > self._max:
            raise _Broken(f"Message size {length} exceeds limit {self._max}")
        key = await reader.readexactly(4) if masked else b""
        payload = await reader.readexactly(length)
        return fin, opcode, _mask(payload, key) if key else payload

    async def _read_loop(self) -> None:
        while True:
            message = await self._read_message()
            self._inbox.put_nowait(message)
            if message.type in (MessageType.CLOSE, MessageType.ERROR):
                return

    async def receive(self) -> Message:
        """The next message (cancelling the wait loses nothing)."""
        if self.closed and self._inbox.empty():
            return Message(MessageType.CLOSE)
        message = await self._inbox.get()
        if message.type in (MessageType.CLOSE, MessageType.ERROR):
            self.closed = True
        return message

    async def _read_message(self) -> Message:
        """The next message off the wire; pings are answered on the way."""
        parts: list[bytes] = []
        kind: int | None = None
        try:
            while True:
                fin, opcode, payload = await self._read_frame()
                if opcode == _PING:
                    await self._send(_PONG, payload)
                    continue
                if opcode == _PONG:
                    continue
                if opcode == _CLOSE:
                    self.close_code = (
                        struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    )
                    await self._reply_close()
                    return Message(MessageType.CLOSE)
                if opcode in (_TEXT, _BINARY):
                    if kind is not None:
                        raise _Broken("The opcode in non-fin frame is expected to be zero")
                    kind = opcode
                elif opcode != _CONTINUATION or kind is None:
                    raise _Broken(f"Unexpected opcode={opcode!r}")
                parts.append(payload)
                size = sum(len(p) for p in parts)
                if size > self._max:
                    raise _Broken(f"Message size {size} exceeds limit {self._max}")
                if not fin:
                    continue
                data = b"".join(parts)
                if kind == _BINARY:
                    return Message(MessageType.BINARY, data)
                try:
                    return Message(MessageType.TEXT, data.decode("utf-8"))
                except UnicodeDecodeError:
                    raise _Broken("Invalid UTF-8 text message") from None
        except _Broken as exc:
            self._conn.abort()
            return Message(MessageType.ERROR, str(exc))
        except (ConnectionError, OSError, EOFError, NetError):
            # EOFError: asyncio.IncompleteReadError, the connection ended mid-frame.
            self.close_code = 1006
            self._conn.abort()
            return Message(MessageType.CLOSE)

    async def _reply_close(self) -> None:
        if self._close_sent:
            return
        self._close_sent = True
        with contextlib.suppress(NetError):
            await self._send(_CLOSE, struct.pack("!H", 1000))

    async def close(self) -> None:
        """The close handshake: our close frame, then the server's (callers bound the wait)."""
        try:
            if not self.closed:
                await self._reply_close()
                while (await self.receive()).type not in (MessageType.CLOSE, MessageType.ERROR):
                    pass
        finally:
            self.abort()

    def abort(self) -> None:
        self.closed = True
        self._reading.cancel()
        self._conn.abort()


async def _read_head(conn: Connection) -> tuple[int, dict[str, str]]:
    """The status and headers (lower-cased names) of the upgrade's answer, bounded."""
    reader = conn.reader
    total = 0
    headers: dict[str, str] = {}
    status = 0
    first = True
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except Exception as exc:  # closed early, or a line over the reader's limit
            what = "before answering" if first else "in the answer's headers"
            raise NetError(
                Reason.CONNECTION_CLOSED,
                f"WebSocket failed: the server closed the connection {what} ({type(exc).__name__})",
            ) from None
        total += len(line)
        if total > MAX_HEAD or len(headers) > MAX_HEADERS:
            raise NetError(Reason.CONNECTION_CLOSED, "WebSocket failed: the answer is too large")
        text = line.decode("latin-1").rstrip("\r\n")
        if first:
            parts = text.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise NetError(Reason.CONNECTION_CLOSED, "WebSocket failed: not an HTTP answer")
            status, first = int(parts[1]), False
            continue
        if not text:
            return status, headers
        name, sep, value = text.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
