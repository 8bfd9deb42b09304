"""The ``jwt`` block of a server: how to mint its tokens, and how far to test them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from yarl import URL

from monitor.checks.tokens import origin_of_url
from monitor.units import Duration

__all__ = ["JwtSettings"]

# Most origins a server's jwt block may list besides its own.
MAX_SIGNALLING_ORIGINS = 16


class JwtSettings(BaseModel):
    """How to mint tokens for a server with JWT authentication (or a JaaS tenant).

    Key material is named, never written here: ``secret_env`` (an environment
    variable) or ``secret_file`` for HS*, ``private_key_file`` (PEM) for RS*.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_id: str = Field(min_length=1, max_length=200)
    # monitor: the monitor's own tokens (sub "*", iat, a short lifetime);
    # mod_jitsi: the tokens Moodle's mod_jitsi hands its users, claim for claim
    # (sub: the domain typed in Moodle, which ``subject`` overrides; docs/moodle.md).
    style: Literal["monitor", "mod_jitsi"] = "monitor"
    algorithm: Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512"] = "HS256"
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_file: Path | None = None
    private_key_file: Path | None = None
    key_id: str | None = Field(default=None, max_length=300)
    audience: str = "jitsi"
    subject: str | None = None
    lifetime: Duration = 300.0
    # full: also check that bad tokens are refused and how the moderator
    # claim is handled; valid_only: only that a valid token works.
    matrix: Literal["full", "valid_only"] = "full"
    # The refusal cases and the moderator pair run at most this often; their
    # last verdicts are carried in between (0: every round).
    matrix_interval: Duration = 900.0
    # forbidden: a client without a token must not get into a room (a server
    # that lets one in fails jwt_enforced with jwt_optional); allowed: the
    # server has guests on purpose, and that is only noted.
    guests: Literal["forbidden", "allowed"] = "forbidden"
    # Origins (scheme://host[:port]) besides the server's own that config.js
    # may send signalling, and so the token, to.
    signalling_origins: list[str] = Field(default_factory=list)
    # How long to watch a joined room for role changes before judging them.
    settle: Duration = 2.5
    # What the token says about its user, and more claims, as the platform sends them.
    user_name: str = Field(default="jitsi-monitor", max_length=200)
    user_email: str = Field(default="", max_length=200)
    features: dict[str, bool | str] = Field(default_factory=dict)
    claims: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("claims")
    @classmethod
    def _claims(cls, v: dict[str, object]) -> dict[str, object]:
        reserved = {"iss", "aud", "sub", "room", "exp", "nbf", "iat", "context", "moderator"}
        taken = sorted(reserved & set(v))
        if taken:
            raise ValueError(f"the monitor sets {', '.join(taken)} itself")
        return v

    @field_validator("settle")
    @classmethod
    def _settle(cls, v: float) -> float:
        if v > 10:
            raise ValueError("settle must be at most 10s")
        return v

    @field_validator("lifetime")
    @classmethod
    def _lifetime(cls, v: float) -> float:
        if not 30 <= v <= 3600:
            raise ValueError("lifetime must be between 30s and 1h")
        return v

    @field_validator("matrix_interval")
    @classmethod
    def _matrix_interval(cls, v: float) -> float:
        if not 0 <= v <= 86400:
            raise ValueError("matrix_interval must be between 0s (every round) and 24h")
        return v

    @field_validator("signalling_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        if len(v) > MAX_SIGNALLING_ORIGINS:
            raise ValueError(f"at most {MAX_SIGNALLING_ORIGINS} signalling origins")
        for text in v:
            if not _bare_origin(text):
                shown = text[:80]
                raise ValueError(
                    f"{shown!r} is not an origin: want scheme://host[:port] with scheme "
                    "https, wss, http or ws, and no path, query or credentials"
                )
        return v


def _bare_origin(text: str) -> bool:
    """An origin as written: a scheme, a host, perhaps a port, nothing else."""
    if origin_of_url(text) is None:
        return False
    url = URL(text)
    return (
        url.path in ("", "/")
        and not url.query_string
        and not url.fragment
        and url.user is None
        and url.password is None
    )
