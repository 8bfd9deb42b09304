"""Values a config is made of: durations, server URLs, URL patterns, shards, names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitor.units import Duration, Size, parse_duration, parse_size

__all__ = [
    "Duration",
    "Shard",
    "Size",
    "check_interval",
    "check_timeout",
    "parse_duration",
    "parse_shard",
    "parse_size",
    "server_url",
    "url_pattern",
]


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RESERVED_LABELS = frozenset({"server", "location", "kind", "domain", "url", "check", "phase"})


# The common shape, checked at once: scheme, a plain host name or IPv4
# address, an optional port, a path without spaces, query or fragment.
_SIMPLE_URL = re.compile(r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::(\d{1,5}))?(?:/[!-~]*)?")
_BAD_URL_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")


def server_url(v: str) -> str:
    """A server's base URL, checked and ending in ``/``; ValueError says what is wrong."""
    simple = _SIMPLE_URL.fullmatch(v)
    if simple is not None and not any(c in v for c in "?#@\\"):
        port = simple.group(1)
        if port is None or 0 < int(port) < 65536:
            return v if v.endswith("/") else v + "/"
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https"):
        raise ValueError("url must start with https:// or http://")
    if not parts.hostname:
        raise ValueError("url has no host name")
    if parts.username or parts.password:
        raise ValueError("url must not carry a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("url must not have a query or fragment: give the base URL")
    if _BAD_URL_CHAR.search(v):
        raise ValueError("url must not contain spaces or control characters")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"url has a bad port: {exc}") from None
    return v if v.endswith("/") else v + "/"


def url_pattern(pattern: str) -> re.Pattern[str]:
    """A ``probe.allow`` pattern: ``*`` matches any run of characters but ``/``."""
    parts = urlsplit(pattern.replace("*", "x"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "a pattern is a URL starting with https:// or http://, e.g. https://*.example.org/"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("a pattern has no user name, query or fragment")
    body = "".join("[^/@?#]*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile(body + ("" if pattern.endswith("/") else "/"), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Shard:
    """This monitor's part of the fleet: shard ``index`` of ``count`` (1-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: str) -> Shard:
    """``"i/n"`` with 1 <= i <= n; ValueError says what is wrong."""
    m = re.fullmatch(r"\s*(\d{1,4})\s*/\s*(\d{1,4})\s*", value)
    if not m:
        raise ValueError(f"a shard is i/n, e.g. 1/3, not {value[:20]!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: i must be between 1 and n")
    return Shard(index, count)


def check_interval(v: float) -> float:
    if not 1 <= v <= 86400:
        raise ValueError("interval must be between 1s and 24h")
    return v


def check_timeout(v: float) -> float:
    if not 0 < v <= 3600:
        raise ValueError("timeout must be more than 0s and at most 1h")
    return v
