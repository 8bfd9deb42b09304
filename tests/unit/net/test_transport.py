"""The stamped transport under the HTTP client and the WebSocket: what asyncio's own
transports did, it does too (flow control both ways, a server's half-close, TLS's
close_notify, a refused connection), and its chunks carry a receive time."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time

import pytest
import trustme

from monitor.net.transport import StampedTransport, connect

BIG = 8 * 1024 * 1024  # far more than the socket buffers and the reader's limit


def _tls_server(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def _tls_client(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _open(
    port: int, ca: trustme.CA | None, limit: int = 64 * 1024
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, StampedTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await connect("127.0.0.1", port, protocol)
    if ca is not None:
        try:
            await transport.start_tls(_tls_client(ca), "127.0.0.1")
        except BaseException:
            transport.abort()  # as open_connection does
            raise
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop), transport


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
async def test_megabytes_both_ways_with_a_slow_reader_on_each_side(
    secure: bool, ca: trustme.CA
) -> None:
    """The server reads our 8 MiB slowly (our writes wait in drain), then sends
    8 MiB that we read slowly (the transport stops reading meanwhile)."""
    received = hashlib.sha256()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while got < BIG:
            chunk = await reader.read(64 * 1024)
            if not chunk:
                break
            received.update(chunk)
            got += len(chunk)
            await asyncio.sleep(0.001)
        writer.write(bytes(range(256)) * (BIG // 256))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=_tls_server(ca) if secure else None
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer, transport = await _open(port, ca if secure else None)
    try:
        payload = bytes(reversed(range(256))) * (BIG // 256)
        writer.write(payload)
        assert transport.get_write_buffer_size() > 0  # the socket could not take it all
        await asyncio.wait_for(writer.drain(), 60)
        back = hashlib.sha256()
        total = 0
        while True:
            chunk = await asyncio.wait_for(reader.read(256 * 1024), 60)
            if not chunk:
                break
            back.update(chunk)
            total += len(chunk)
            await asyncio.sleep(0.002)
    finally:
        transport.abort()
        server.close()
        await server.wait_closed()
    assert received.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert total == BIG
    assert back.hexdigest() == hashlib.sha256(bytes(range(256)) * (BIG // 256)).hexdigest()


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
async def test_the_server_hanging_up_ends_the_stream_after_its_last_bytes(
    secure: bool, ca: trustme.CA
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"last words")
        await writer.drain()
        writer.close()  # over TLS: close_notify, then FIN

    server = await asyncio.start_server(
        handle, "127.0.0.1", 0, ssl=_tls_server(ca) if secure else None
    )
    port = server.sockets[0].getsockname()[1]
    reader, _, transport = await _open(port, ca if secure else None)
    try:
        before = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        transport.abort()
        server.close()
        await server.wait_closed()
    assert data == b"last words"
    assert transport.arrived is not None
    # A stamp is the moment the bytes reached the socket: not in the future,
    # and not before the connection existed.
    assert transport.arrived <= time.monotonic()
    assert transport.arrived > before - 10


async def test_a_refused_connection_is_connection_refused() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    loop = asyncio.get_running_loop()
    protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop)
    with pytest.raises(ConnectionRefusedError):
        await connect("127.0.0.1", port, protocol)


async def test_an_untrusted_certificate_fails_the_handshake(ca: trustme.CA) -> None:
    other = trustme.CA()  # the server's certificate is from a CA we do not trust

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=_tls_server(other))
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await _open(port, ca)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_server_that_drops_the_connection_mid_handshake(ca: trustme.CA) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)  # the start of our ClientHello, then hang up
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises((ConnectionError, ssl.SSLError)):
            await asyncio.wait_for(_open(port, ca), 10)
    finally:
        server.close()
        await server.wait_closed()
