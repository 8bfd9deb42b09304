"""Entries of a server list made into checked URLs, server names and label values."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from monitor.config.values import NAME, server_url

__all__ = ["clean_text", "derive_name", "entry_url", "unique_names"]

_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NOT_NAME = re.compile(r"[^a-z0-9_.-]+")
# Longest entry (a URL or host name) taken from a list.
MAX_ENTRY = 2048


def _host(raw: str) -> str:
    """A host name (IDNA-encoded, lower case) or an IP address; ValueError if neither."""
    host = raw.strip().rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{raw[:80]!r} is not a host name") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{raw[:80]!r} is not a host name")
    if len(labels) < 2 and host != "localhost":
        raise ValueError(f"{raw[:80]!r} is not a fully qualified host name")
    return host


def entry_url(entry: str, scheme: str = "https") -> str:
    """The base URL of a list entry: a URL, or a host name (``https://`` is assumed).

    A query or fragment is dropped, a path kept (a tenant); the result has
    passed ``server_url``. ValueError says why an entry is not a server.
    """
    text = entry.strip().strip("<>")
    if not text or len(text) > MAX_ENTRY:
        raise ValueError("empty or too long")
    if "://" not in text:
        text = f"{scheme}://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{entry[:80]!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{entry[:80]!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError(f"{entry[:80]!r} carries a user name or password")
    host = _host(parts.hostname or "")
    scheme = parts.scheme.lower()
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if scheme == "https" else 80):
        shown += f":{port}"
    path = parts.path or "/"
    return server_url(f"{scheme}://{shown}{path}")


def derive_name(url: str) -> str:
    """A server name from a URL: its host with dots as dashes, then a port
    other than the scheme's and the path (``meet.jit.si`` -> ``meet-jit-si``)."""
    parts = urlsplit(url)
    name = (parts.hostname or "").replace(".", "-").replace(":", "-")
    if parts.port is not None and parts.port != (443 if parts.scheme == "https" else 80):
        name += f"-{parts.port}"
    path = parts.path.strip("/")
    if path:
        name += "-" + path.replace("/", "-")
    name = _NOT_NAME.sub("-", name.lower()).strip("-_.")
    if not NAME.fullmatch(name):
        digest = hashlib.sha256(url.encode()).hexdigest()[:8]
        name = (name[:55].rstrip("-_.") + "-" + digest).lstrip("-_.") or f"server-{digest}"
    return name


def unique_names(names: list[str], taken: set[str] | None = None) -> list[str]:
    """The names made unique in order: a repeated one gets ``-2``, ``-3``, ..."""
    seen = set(taken or ())
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            suffix = f"-{n}"
            candidate = name[: 64 - len(suffix)] + suffix
        seen.add(candidate)
        out.append(candidate)
    return out


def clean_text(text: str, limit: int = 128) -> str:
    """A label value from untrusted text: no control or format characters,
    spaces collapsed, at most ``limit`` characters."""
    kept = "".join(
        " " if c.isspace() else c for c in text if unicodedata.category(c)[0] != "C" or c.isspace()
    )
    return " ".join(kept.split())[:limit].strip()
