"""What the media family found besides its checks: the services, their probes, the refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.model import Reason

__all__ = ["MediaProbe", "MediaReport", "MediaService"]


@dataclass(frozen=True, slots=True)
class MediaService:
    """A STUN or TURN service a browser in a meeting on the server would use."""

    type: str  # stun, turn or turns
    host: str  # a checked host name or IP address
    port: int
    transport: str  # udp or tcp (turns: TLS over tcp)
    # Where it came from: "extdisco" (the XMPP server's XEP-0215 answer) or
    # "config.js" (p2p.stunServers).
    source: str
    # Whether the server handed out a username and password with it.
    credentials: bool = False
    # When those credentials expire (Unix time), when the server said.
    expires: float | None = None
    # One of Google's public STUN servers (stun*.l.google.com).
    google: bool = False

    @property
    def name(self) -> str:
        """``type:host:port`` (the ``service`` label)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.type}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class MediaProbe:
    """One STUN Binding or TURN Allocate against one service over one transport."""

    service: MediaService
    reason: Reason
    # The Binding's round trip, or the Allocate's duration (None: no answer).
    seconds: float | None = None
    detail: str = ""

    @property
    def success(self) -> bool:
        return self.reason is Reason.OK


@dataclass(frozen=True, slots=True)
class MediaReport:
    """What the media stage found: the services, each one's probe, what was refused."""

    family: ClassVar[str] = "media"

    at: float  # when the probes ran (Unix time), this round or carried from an earlier one
    services: tuple[MediaService, ...] = ()
    probes: tuple[MediaProbe, ...] = ()
    # Services announced but not probed, each with why (bounded, escaped).
    refused: tuple[str, ...] = ()

    @property
    def turn_credentials_expiry(self) -> float | None:
        """When the earliest credentials of a probed TURN service expire (Unix time).

        STUN services and services refused before their probe (their address)
        do not count: a browser would not use their credentials.
        """
        expiries = [
            p.service.expires
            for p in self.probes
            if p.service.type != "stun" and p.service.credentials and p.service.expires is not None
        ]
        return min(expiries) if expiries else None
