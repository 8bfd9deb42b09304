"""Hostile peers for the tests: raw loopback servers that send what aiohttp would refuse."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import resource
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

# Markup, terminal escapes (clear screen, window title, bell), a bare CR and
# LF (a forged log line), bidi controls and an emoji code: what a server may
# put into a header, an error text or config.js.
HOSTILE = (
    "[/] [link=https://evil.example/]click[/link] [bold red]x "
    "\x1b[2J\x1b]0;owned\x07 \r\n2030-01-01 ERROR forged line \u202egnp.exe\u2066 :smile:"
)

# What must never reach a terminal, a log line or a page raw.
RAW = ("\x1b", "\x07", "\r", "\n", "\u202e", "\u2066", "\x9b")


def raw_free(text: str, allow_newlines: bool = False) -> bool:
    """True when ``text`` holds none of the raw control characters of ``HOSTILE``."""
    bad = [c for c in RAW if not (allow_newlines and c == "\n")]
    return not any(c in text for c in bad)


@asynccontextmanager
async def raw_http(answer: Callable[[bytes], bytes]) -> AsyncIterator[str]:
    """A loopback HTTP server that answers each request head with ``answer(head)``
    written as raw bytes, then closes; yields its base URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(head))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


def rss_bytes() -> int:
    """This process's resident set size now, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def peak_rss_of_children() -> int:
    """The largest peak RSS of any waited-for child process, in bytes."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ten_thousand(path: Path, count: int = 10_000) -> Path:
    lines = ["servers:"]
    for i in range(count):
        lines += [
            f"  - name: s{i:05d}",
            f"    url: https://s{i:05d}.example.org/",
            f"    labels: {{team: t{i % 7}}}",
        ]
    lines.append("pools:")
    for p in range(count // 10):
        lines.append(f"  - {{name: pool{p}, servers: [s{p * 10:05d}, s{p * 10 + 1:05d}]}}")
    path.write_text("\n".join(lines) + "\n")
    return path


LIMIT = 1024


async def accept_websocket(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: bytes = b""
) -> None:
    """Read a WebSocket handshake's request head and write the 101 answer (naming
    ``protocol`` when given): a raw server's first step before its frames."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    chosen = b"Sec-WebSocket-Protocol: " + protocol + b"\r\n" if protocol else b""
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + chosen
        + b"Sec-WebSocket-Accept: "
        + accept
        + b"\r\n\r\n"
    )
