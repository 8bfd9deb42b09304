"""The domain's plain types: a server to probe (``Target``) and its resolved settings.

``monitor.config`` turns the YAML into these; everything below the service
(the runner, the check families, the probes) reads only these, never the
config's models. This module imports nothing of the monitor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["ALL_REGIONS", "REGION", "MediaTarget", "Target", "TokenKey"]

# A beacon's region name (the tag's data-region, listed in beacon.regions):
# short, lower case; "all" is the label of every region together.
REGION: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
ALL_REGIONS: Final = "all"


@dataclass(frozen=True, slots=True)
class TokenKey:
    """What signs a server's tokens, and the claims it fixes."""

    algorithm: str
    key: str = ""  # the shared secret (HS*) or the PEM private key (RS*)
    key_id: str | None = None
    issuer: str = ""
    audience: str = "jitsi"
    subject: str = "*"
    lifetime: float = 300.0
    jaas: bool = False
    matrix: bool = True  # run the whole token check matrix, not only a valid token
    settle: float = 2.5
    # Run the refusal cases and the moderator pair at most this often (seconds).
    matrix_interval: float = 900.0
    # Whether a client without a token may log in and join (a guest domain on purpose).
    guests_allowed: bool = False
    # Origins besides the server's own where tokens may go (``origin_of_url`` form).
    signalling_origins: tuple[str, ...] = ()
    user_name: str = "jitsi-monitor"
    user_email: str = ""
    features: tuple[tuple[str, object], ...] = ()
    extra: tuple[tuple[str, object], ...] = ()  # more top-level claims
    # "monitor": the monitor's own tokens; "mod_jitsi": as Moodle's mod_jitsi mints them.
    style: str = "monitor"

    def __repr__(self) -> str:  # never show the key material
        return f"TokenKey(algorithm={self.algorithm!r}, key_id={self.key_id!r}, key=<hidden>)"


@dataclass(frozen=True, slots=True)
class MediaTarget:
    """A server's media settings with the kind's defaults filled in."""

    interval: float = 300.0
    timeout: float = 5.0
    max_services: int = 8
    allow_private: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """A server to probe, with every setting resolved."""

    name: str
    url: str
    kind: str
    interval: float
    timeout: float
    labels: tuple[tuple[str, str], ...] = ()
    tls_verify: bool = True
    ca_file: Path | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    max_redirects: int = 5
    signalling: bool = True
    focus: bool = True
    join: bool = True
    token_key: TokenKey | None = None
    # Probed by URL on demand: redirects and signalling must stay on its origin.
    confined: bool = False
    # Only the checks of these groups run (/probe's checks=); None: all of them.
    groups: frozenset[str] | None = None
    # The media checks (STUN, TURN); None: not checked.
    media: MediaTarget | None = None
