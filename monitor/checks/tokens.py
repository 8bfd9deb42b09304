"""Mint the JWTs a Jitsi server with token authentication accepts.

Self-hosted servers (Prosody ``authentication = "token"``) check ``alg``
against their ``signature_algorithm`` (HS256/384/512 with a shared secret,
RS256/384/512 with keys fetched by ``kid``), the signature, ``exp``, ``nbf``,
``iss`` (their ``app_id``), ``aud`` and the ``room`` claim; the
token-moderation plugin reads a top-level boolean ``moderator``.

JaaS (8x8.vc) wants RS256 with ``kid = vpaas-magic-cookie-<hex>/<keyid>``,
``iss = chat``, ``aud = jitsi``, ``sub`` = the AppID, and the user's
``moderator`` as the strings ``"true"``/``"false"``.

Secrets only ever come from the config's key material (read from env vars
or files) and never appear in a result, log line or error message. A token
goes only to the server's own origin, or to an origin its config lists
(``origin_of_url`` gives the form they are compared in).
"""

from __future__ import annotations

import secrets
import time
import warnings
from typing import Any, Final

import jwt
from jwt.warnings import InsecureKeyLengthWarning
from yarl import URL

from monitor.checks.mod_jitsi_tokens import mint_mod_jitsi
from monitor.domain import TokenKey

__all__ = ["GUESTS", "TokenKey", "mint", "origin_of_url"]

# The guest policies of a server's jwt block: may a client without a token
# log in and join a room?
GUESTS: Final = ("forbidden", "allowed")

# The scheme of the page that a signalling scheme belongs to (a WebSocket's
# origin is the HTTP origin of the same host and port).
_PAGE_SCHEME: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def origin_of_url(text: str) -> str | None:
    """``scheme://host:port`` of an HTTP(S) or WebSocket URL, as origins compare
    (``ws`` as ``http``, ``wss`` as ``https``, the port always written, the host
    in lower case); None for anything else."""
    try:
        url = URL(text)
        scheme = _PAGE_SCHEME.get(url.scheme)
        host, port = url.host, url.port
    except (ValueError, TypeError):
        return None
    if scheme is None or not host or port is None:
        return None
    host = host.lower()
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def mint(
    key: TokenKey,
    room: str,
    *,
    moderator: bool = False,
    name: str = "",
    now: float | None = None,
    lifetime: float | None = None,
) -> str:
    """A token for ``room`` (``*`` for any room) as the server expects it."""
    if key.style == "mod_jitsi":
        return mint_mod_jitsi(key, room, moderator=moderator, name=name, now=now, lifetime=lifetime)
    issued = int(time.time() if now is None else now)
    user: dict[str, Any] = {
        "id": f"jitsi-monitor-{secrets.token_hex(4)}",
        "name": name or key.user_name,
        "email": key.user_email,
        # JaaS reads strings here; the self-hosted plugins read the top-level claim.
        "moderator": ("true" if moderator else "false") if key.jaas else moderator,
    }
    claims: dict[str, Any] = dict(key.extra)
    claims |= {
        "iss": "chat" if key.jaas else key.issuer,
        "aud": "jitsi" if key.jaas else key.audience,
        "sub": key.subject,
        "room": room,
        "iat": issued,
        "nbf": issued - 10,
        "exp": issued + int(key.lifetime if lifetime is None else lifetime),
        "context": {"user": user, "features": dict(key.features)},
    }
    if not key.jaas:
        claims["moderator"] = moderator
    headers: dict[str, Any] = {"typ": "JWT"}
    if key.key_id:
        headers["kid"] = key.key_id
    with warnings.catch_warnings():
        # The server's secret is the operator's choice, short or not.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key.key, algorithm=key.algorithm, headers=headers)
