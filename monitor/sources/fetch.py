"""Read a list or an answer from a URL or a file, bounded in size and time.

URLs go through the monitor's own HTTP client (``monitor.net.http``):
its timeouts, its size cap (also after decompression), its User-Agent with
the ``contact`` of the config, so whoever serves the list can tell who asks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.files import UnusableFile, read_regular
from monitor.net import NetError, Resolver, make_ssl_context
from monitor.net.http import HttpClient

__all__ = ["SourceError", "fetch_url", "is_url", "read_bounded", "read_source"]


class SourceError(Exception):
    """A list, file or endpoint could not be read or understood; the message says why."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


async def fetch_url(
    url: str,
    *,
    user_agent: str,
    time_limit: float,
    max_bytes: int,
    resolver: Resolver | None = None,
) -> bytes:
    """The body of a ``GET url`` answered 200 (redirects followed); SourceError otherwise."""
    client = HttpClient(
        resolver=resolver,
        ssl_context=make_ssl_context(True, None),
        user_agent=user_agent,
        max_body_bytes=max_bytes,
        max_redirects=5,
    )
    try:
        async with asyncio.timeout(time_limit), client:
            fetch = await client.get(url)
    except TimeoutError:
        raise SourceError(f"no complete answer within {time_limit:g}s") from None
    except NetError as exc:
        raise SourceError(f"{exc.reason.value}: {exc.detail}") from None
    response = fetch.response
    assert response is not None
    if response.status != 200:
        raise SourceError(f"http_status: the answer is HTTP {response.status}, not 200")
    return response.body


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, at most ``max_bytes``; SourceError otherwise."""
    try:
        return read_regular(path, max_bytes)
    except UnusableFile as exc:
        if "larger" in str(exc) or "grew" in str(exc):
            raise SourceError(f"{path} is larger than {max_bytes} bytes") from None
        raise SourceError(f"{path} is not a regular file") from None
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None


async def read_source(
    source: str, *, user_agent: str, time_limit: float, max_bytes: int
) -> tuple[str, str]:
    """The text of a URL or a file (``-``: standard input), and a name for it."""
    if is_url(source):
        body = await fetch_url(
            source, user_agent=user_agent, time_limit=time_limit, max_bytes=max_bytes
        )
    elif source == "-":
        body = await asyncio.to_thread(_stdin, max_bytes)
    else:
        body = await asyncio.to_thread(read_bounded, Path(source), max_bytes)
    try:
        return body.decode("utf-8-sig"), source
    except UnicodeDecodeError:
        raise SourceError(f"{source[:200]} is not UTF-8 text") from None


def _stdin(max_bytes: int) -> bytes:
    import sys

    data = sys.stdin.buffer.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SourceError(f"standard input is larger than {max_bytes} bytes")
    return data
