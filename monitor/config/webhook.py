"""A webhook as the config resolves it: where failover events go, and how it is shown."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Webhook", "shown_url"]


def shown_url(url: str) -> str:
    """A webhook URL fit for the log: scheme, host and port only, since its
    path or query may hold the receiver's secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    secret: str = ""  # for the signature; read from the environment at load
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"Webhook(url={shown_url(self.url)!r}, secret=<hidden>)"
