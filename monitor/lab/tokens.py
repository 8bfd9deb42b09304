"""Token checks as Jitsi's Prosody plugins make them (mod_auth_token, token/util.lib.lua).

The failure texts are the ones a real server sends in its SASL failure, so
the monitor's reports read the same against the lab as against Prosody.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

import jwt

__all__ = ["ENFORCEMENT", "Enforcement", "TokenPolicy", "TokenRejected"]

Enforcement = Literal["strict", "accept_expired", "accept_any_signature"]
ENFORCEMENT: tuple[str, ...] = get_args(Enforcement)


class TokenRejected(Exception):
    """The server's reason for refusing a token, e.g. ``Invalid signature``."""


@dataclass(frozen=True)
class TokenPolicy:
    """What a server with ``authentication = "token"`` accepts."""

    app_id: str
    secret: str
    algorithm: str = "HS256"
    # Broken on purpose, to show the monitor catching it.
    enforcement: Enforcement = "strict"

    def check(self, token: str | None) -> dict[str, Any]:
        """The token's claims, or TokenRejected with the server's text."""
        if not token:
            raise TokenRejected("token required")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("Invalid token") from None
        if header.get("typ", "JWT") != "JWT" or header.get("alg") != self.algorithm:
            raise TokenRejected("Invalid or incorrect alg")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={
                    "verify_signature": self.enforcement != "accept_any_signature",
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenRejected("Invalid signature") from None
        except jwt.PyJWTError:
            raise TokenRejected("Invalid token") from None
        now = time.time()
        exp = claims.get("exp")
        if self.enforcement != "accept_expired" and (not isinstance(exp, int | float) or exp < now):
            raise TokenRejected("Not acceptable by exp")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > now:
            raise TokenRejected("Not acceptable by nbf")
        if claims.get("iss") != self.app_id:
            raise TokenRejected("Invalid issuer ('iss' claim)")
        if "aud" not in claims:
            raise TokenRejected("'aud' claim is missing")
        if not isinstance(claims.get("room"), str):
            raise TokenRejected("'room' claim is missing")
        return claims
