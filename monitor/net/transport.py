"""A socket transport whose bytes carry the time the kernel received them.

Why the monitor has its own transport: a phase that ends "when the answer
arrived" was timed in the protocol's ``data_received``, which runs when the
event loop gets round to the socket. While the loop runs another ladder's
TLS handshake (0.5-1 ms of OpenSSL work per step) or parses a report, an
answer that is already there waits, and the wait was counted as the
server's. Here every read is a ``recvmsg`` with ``SO_TIMESTAMPNS`` (Linux):
the kernel stamps each segment as it reaches the socket, and the chunk
handed to the protocol carries that stamp (``arrived``, on the
``time.monotonic`` clock), however late the loop read it. Where the kernel
gives no stamp, ``arrived`` is the time of the read, as before.

TLS runs in the transport (``start_tls``: an ``ssl.SSLObject`` over memory
buffers), so a decrypted chunk keeps the stamp of the segment that completed
it. The transport speaks asyncio's ``Transport`` interface, so the
``StreamReader``/``StreamWriter`` pair above it is unchanged; it runs on any
loop (uvloop included) through ``add_reader``/``add_writer``.

What it does not do: listening sockets, ``sendfile``, waiting for the peer's
TLS ``close_notify`` (``close`` sends ours and hangs up; the probes abort
their connections anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import struct
import sys
import time
from typing import Any, Final

__all__ = ["StampedTransport", "connect"]

# SO_TIMESTAMPNS: 35 on Linux (the older, 64-bit-time name; Python 3.11 does
# not export it). Elsewhere, no stamps.
_SO_TIMESTAMPNS: Final = getattr(socket, "SO_TIMESTAMPNS", 35) if sys.platform == "linux" else None
_TIMESPEC: Final = struct.Struct("@ll")
_ANCILLARY: Final = socket.CMSG_SPACE(_TIMESPEC.size) if _SO_TIMESTAMPNS is not None else 0
_READ: Final = 256 * 1024
# A kernel stamp further behind the read than this is not believed (a clock
# step between the two): the read's own time is used.
_PLAUSIBLE: Final = 5.0
_HIGH_WATER: Final = 64 * 1024
_LOW_WATER: Final = 16 * 1024


def _stamp(ancillary: list[tuple[int, int, bytes]], now: float) -> float:
    """The kernel's receive time of a chunk read at ``now`` (``time.monotonic``)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            behind: float = time.time() - (sec + nsec * 1e-9)
            if 0.0 <= behind < _PLAUSIBLE:
                return now - behind
    return now


class StampedTransport(asyncio.Transport):
    """A connected TCP socket (optionally TLS) whose reads note ``arrived``."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: asyncio.Protocol
    ) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._stamped = False
        if _SO_TIMESTAMPNS is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self._stamped = True
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._handshake: asyncio.Future[None] | None = None
        self._buffer = bytearray()
        self._writing = False
        self._reading = True
        self._closing = False
        self._closed = False
        self._eof = False
        self._protocol_paused = False
        # When the bytes handed to the protocol last reached the socket.
        self.arrived: float | None = None
        self._started = False
        self._flushing = False  # a _flush is due

    def start(self) -> None:
        """The socket is connected: tell the protocol, and read."""
        self._started = True
        self._protocol.connection_made(self)
        self._loop.add_reader(self._fd, self._read_ready)

    # -- asyncio.BaseTransport ------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._tls is not None:
            if name == "ssl_object":
                return self._tls
            if name == "sslcontext":
                return self._tls.context
            if name == "peercert":
                return self._tls.getpeercert()
            if name == "cipher":
                return self._tls.cipher()
        if name == "socket":
            return self._sock
        try:
            if name == "peername":
                return self._sock.getpeername()
            if name == "sockname":
                return self._sock.getsockname()
        except OSError:
            return default
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is buffered (and TLS's close_notify), then hang up."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if self._tls is not None and self._handshake is not None and self._handshake.done():
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()
            self._send(self._outgoing.read())
        if not self._buffer:
            self._finish(None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # -- reading --------------------------------------------------------------------
    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading and not self._closing:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing and not self._eof:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _read_ready(self) -> None:
        if self._closing or not self._started:
            return
        try:
            if self._stamped:
                data, ancillary, _, _ = self._sock.recvmsg(_READ, _ANCILLARY)
                now = time.monotonic()
                arrived = _stamp(ancillary, now) if ancillary else now
            else:
                data = self._sock.recv(_READ)
                arrived = time.monotonic()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal(exc)
            return
        if not data:
            self._end_of_stream()
            return
        if self._tls is None:
            self.arrived = arrived
            self._protocol.data_received(data)
            return
        self._incoming.write(data)
        if self._handshake is not None and not self._handshake.done() and not self._shake():
            return
        self._read_tls(arrived)

    def _read_tls(self, arrived: float) -> None:
        tls = self._tls
        assert tls is not None
        chunks: list[bytes] = []
        closed = False
        # Read while the buffers hold something (a read that finds nothing
        # raises, which costs more than asking first).
        while self._incoming.pending or tls.pending():
            try:
                chunk = tls.read(_READ)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                closed = True
                break
            except ssl.SSLError as exc:
                self._fatal(exc)
                return
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        if self._outgoing.pending and not self._flushing:  # e.g. a key update's answer
            self._flushing = True
            self._loop.call_soon(self._flush)
        if chunks:
            self.arrived = arrived
            self._protocol.data_received(b"".join(chunks))
        if closed and not self._closing:
            self._end_of_stream()

    def _end_of_stream(self) -> None:
        self._eof = True
        self._stop_reading()
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(
                ConnectionResetError("the connection was closed during the TLS handshake")
            )
            self._finish(None)
            return
        keep_open = self._protocol.eof_received()
        if not keep_open or self._tls is not None:
            self.close()

    # -- TLS ------------------------------------------------------------------------
    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, *, server_side: bool = False
    ) -> None:
        """The TLS handshake on this connection (the client's; the server's for the
        benchmark's targets); raises ``ssl.SSLError`` (or ``ConnectionError``)
        when it fails. The caller aborts on failure."""
        self._tls = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
        )
        self._handshake = self._loop.create_future()
        self._shake()
        await self._handshake

    def _shake(self) -> bool:
        """Go on with the handshake; True once it is done."""
        assert self._tls is not None
        assert self._handshake is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._send(self._outgoing.read())
            return False
        except (ssl.SSLError, OSError) as exc:
            self._send(self._outgoing.read())  # the alert, for the server's log
            if not self._handshake.done():
                self._handshake.set_exception(exc)
            self._stop_reading()
            return False
        if not self._handshake.done():
            self._handshake.set_result(None)
        # Our last handshake message goes out with the first bytes the caller
        # writes when it resumes (one segment, as a browser sends them), or
        # after that turn of the loop when it writes nothing.
        self._flushing = True
        self._loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        self._flushing = False
        if self._outgoing.pending:
            self._send(self._outgoing.read())

    # -- writing --------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._closed:
            return
        if self._tls is not None:
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:
                self._fatal(exc)
                return
            data = self._outgoing.read()
        self._send(data)

    def _send(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self._closed:
            return
        if not self._buffer:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fatal(exc)
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._buffer += data
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)
        if not self._protocol_paused and len(self._buffer) > _HIGH_WATER:
            self._protocol_paused = True
            self._protocol.pause_writing()

    def _write_ready(self) -> None:
        try:
            sent = self._sock.send(self._buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal(exc)
            return
        del self._buffer[:sent]
        if self._protocol_paused and len(self._buffer) <= _LOW_WATER:
            self._protocol_paused = False
            self._protocol.resume_writing()
        if not self._buffer:
            self._writing = False
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._finish(None)

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return _LOW_WATER, _HIGH_WATER

    def can_write_eof(self) -> bool:
        return False

    def abort(self) -> None:
        self._closing = True
        self._finish(None)

    # -- the end --------------------------------------------------------------------
    def _fatal(self, exc: BaseException) -> None:
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(exc)
        self._closing = True
        self._finish(exc if isinstance(exc, Exception) else None)

    def _finish(self, exc: Exception | None) -> None:
        """Close the socket and tell the protocol, once."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._stop_reading()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        self._buffer.clear()
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(ConnectionAbortedError("the connection was closed"))
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)

    def __del__(self) -> None:
        if not self._closed:
            self._sock.close()


async def connect(
    addr: str, port: int, protocol: asyncio.Protocol
) -> tuple[StampedTransport, float]:
    """Connect to ``addr`` (an IP address) and ``port``; the transport, and the
    ``time.monotonic`` time the loop learnt the connection was made.

    Raises ``OSError`` as ``loop.create_connection`` does (refused,
    unreachable, ...)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    transport = StampedTransport(loop, sock, protocol)
    fd = sock.fileno()
    reading = False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((addr, port))
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, f"Connect call failed {(addr, port)}: {errno.errorcode.get(code)}")
        made: asyncio.Future[float] = loop.create_future()

        def writable() -> None:
            if not made.done():
                made.set_result(time.monotonic())

        # The reader first: the writer then shares its poll handle (one
        # registration for the connection's life, not one per callback).
        loop.add_reader(fd, transport._read_ready)
        reading = True
        loop.add_writer(fd, writable)
        try:
            connected = await made
        finally:
            loop.remove_writer(fd)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, f"Connect call failed {(addr, port)}: {errno.errorcode.get(code)}")
    except BaseException:
        if reading:
            loop.remove_reader(fd)
        transport._closed = True
        sock.close()
        raise
    transport._started = True
    protocol.connection_made(transport)
    return transport, connected
