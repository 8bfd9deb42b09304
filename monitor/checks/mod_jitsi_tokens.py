"""Tokens minted as Moodle's mod_jitsi mints them, claim for claim and byte for byte.

Read from SergioComeron/moodle-mod_jitsi at 3e040231d89c8b732d33a5d7140d0099eba29d49,
``classes/local/session.php`` ``build_token`` (l.43-134) and ``classes/local/room.php``
(``normalize_session_name``):

- types 1 and 3 (HS256): header ``{"kid":"jitsi/custom_key_name","typ":"JWT","alg":"HS256"}``;
  payload ``context`` (``user``: affiliation, avatar, name, email, id ``""``, moderator;
  ``group: ""``), ``aud: jitsi``, ``iss``: the row's appid, ``sub``: the domain typed
  in Moodle, ``room``, ``exp`` (now + 24 h), a top-level ``moderator``; JSON with
  ``JSON_UNESCAPED_SLASHES`` (``/`` kept, non-ASCII as ``\\uXXXX``);
- type 2 (8x8 JaaS, RS256): header ``kid``: the API key id; payload ``iss: chat``,
  ``aud: jitsi``, ``exp``, ``nbf`` (now - 10), ``room: "*"``, ``sub``: the AppID,
  ``context.user`` (moderator, email, name, avatar, id) and ``context.features``
  (all four ``= teacher``); plain ``json_encode`` (``/`` escaped as ``\\/``).

No ``iat`` in either. The base64url is unpadded. A moderator's token is the
owner's (``affiliation: owner``, JaaS features on), a member's the rest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any, Final
from urllib.parse import quote_plus

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from monitor.domain import TokenKey

__all__ = ["HS_KID", "LIFETIME", "mint_mod_jitsi", "session_room"]

HS_KID: Final = "jitsi/custom_key_name"
# exp = time() + 86400 in both branches of build_token.
LIFETIME: Final = 86400
_NOT_ROOM: Final = re.compile(r"[^a-zA-Z0-9\-_]")


def session_room(session: str) -> str:
    """``urlencode(normalize_session_name($session))``: the room a Moodle session uses."""
    return quote_plus(_NOT_ROOM.sub("", session))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _json(obj: Any, *, escape_slashes: bool) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    return (text.replace("/", "\\/") if escape_slashes else text).encode()


def mint_mod_jitsi(
    key: TokenKey,
    room: str,
    *,
    moderator: bool = False,
    name: str = "",
    now: float | None = None,
    lifetime: float | None = None,
) -> str:
    """mod_jitsi's token for ``room`` (already normalized; ``*`` for the matrix's any-room cases).

    ``key.jaas``: the RS256 branch (``key.key`` the PEM, ``key.key_id`` the kid,
    ``key.subject`` the AppID); else HS256 (``key.issuer`` the appid,
    ``key.subject`` the Moodle domain, ``key.key`` the secret as is).
    """
    issued = int(time.time() if now is None else now)
    exp = issued + int(LIFETIME if lifetime is None else lifetime)
    shown_name = name or key.user_name
    email: str | None = key.user_email or None
    avatar = ""
    if key.jaas:
        header: dict[str, Any] = {"kid": key.key_id or "", "typ": "JWT", "alg": "RS256"}
        payload: dict[str, Any] = {
            "iss": "chat",
            "aud": "jitsi",
            "exp": exp,
            "nbf": issued - 10,
            "room": "*",
            "sub": key.subject,
            "context": {
                "user": {
                    "moderator": moderator,
                    "email": email,
                    "name": shown_name,
                    "avatar": avatar,
                    "id": "",
                },
                "features": {
                    "recording": moderator,
                    "livestreaming": moderator,
                    "transcription": moderator,
                    "outbound-call": moderator,
                },
            },
        }
        signing = _b64(_json(header, escape_slashes=True)) + "."
        signing += _b64(_json(payload, escape_slashes=True))
        private = serialization.load_pem_private_key(key.key.encode(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("mod_jitsi's JaaS tokens are signed with an RSA key")
        signature = private.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64(signature)}"
    header = {"kid": HS_KID, "typ": "JWT", "alg": "HS256"}
    payload = {
        "context": {
            "user": {
                "affiliation": "owner" if moderator else "member",
                "avatar": avatar,
                "name": shown_name,
                "email": email,
                "id": "",
                "moderator": moderator,
            },
            "group": "",
        },
        "aud": "jitsi",
        "iss": key.issuer,
        "sub": key.subject,
        "room": room,
        "exp": exp,
        "moderator": moderator,
    }
    signing = _b64(_json(header, escape_slashes=False)) + "."
    signing += _b64(_json(payload, escape_slashes=False))
    digest = hmac.new(key.key.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(digest)}"
