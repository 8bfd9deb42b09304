"""What the signalling ladder does for one server (``XmppSettings``).

Its own module, below the transports and the session, so that they all read
it without importing one another in a circle.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from monitor.net import Resolver
from monitor.net.addresses import Reach

__all__ = ["XmppSettings"]


@dataclass(frozen=True, slots=True)
class XmppSettings:
    """What the signalling ladder does for one server."""

    focus: bool = True
    join: bool = True
    token: str | None = None
    # Mints a token for the ladder's room (servers with JWT authentication).
    token_for: Callable[[str], str] | None = None
    # After joining, keep reading presences this long for role changes.
    settle: float = 0.0
    # Log in on this virtual host instead of the one config.js implies.
    login_domain: str | None = None
    # Use this room instead of a fresh random one (it must be a healthcheck- room).
    room: str | None = None
    # Called once the join has been answered with our self-presence.
    on_joined: Callable[[], None] | None = None
    user_agent: str = "jitsi-monitor"
    ssl_context: ssl.SSLContext | None = None
    # Resolves the WebSocket's host (None: the system's resolver); BOSH
    # resolves through its aiohttp session.
    resolver: Resolver | None = None
    # Refuse signalling on another host than the server's (an on-demand probe of a URL).
    same_host: bool = False
    # Which addresses signalling may go to (None: any; monitor.net.addresses).
    reach: Reach | None = None
    # Origins besides the server's own where a token may go (see check_token_target).
    token_origins: tuple[str, ...] = ()
    # Called after the ping with the session's iq sender and hosts.domain
    # (the media family's extdisco query, monitor.checks.media.extdisco).
    after_login: Callable[[Callable[..., Awaitable[Element]], str], Awaitable[None]] | None = None
