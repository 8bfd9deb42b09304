"""Result types every check family shares, read by the runner, state, metrics and the CLI.

Probes return these plain, frozen values; everything downstream only reads
them. What one family alone finds (``MediaReport``, ``JwtResult``, ...) is
its own ``result`` type, in its folder; a report holds it under
``ServerReport.results``. Durations are seconds measured on the monotonic
clock, timestamps are Unix seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol, TypeVar

from monitor.ladder import Check

__all__ = [
    "CertInfo",
    "Check",
    "CheckResult",
    "ConfigFacts",
    "FamilyResult",
    "Phase",
    "Reason",
    "ServerReport",
    "skipped",
]


class Reason(StrEnum):
    """Why a check ended the way it did: a closed set, safe to use as a label."""

    OK = "ok"
    SKIPPED = "skipped"
    DNS_ERROR = "dns_error"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_ERROR = "connect_error"
    PRIVATE_ADDRESS = "private_address"
    TIMEOUT = "timeout"
    TLS_EXPIRED = "tls_expired"
    TLS_HOSTNAME_MISMATCH = "tls_hostname_mismatch"
    TLS_UNTRUSTED = "tls_untrusted"
    TLS_ERROR = "tls_error"
    CONNECTION_CLOSED = "connection_closed"
    PROTOCOL_ERROR = "protocol_error"
    HTTP_STATUS = "http_status"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    BODY_TOO_LARGE = "body_too_large"
    NO_SIGNALLING_URL = "no_signalling_url"
    CONFIGJS_TIMEOUT = "configjs_timeout"
    CONFIGJS_MEMORY = "configjs_memory"
    CONFIGJS_ERROR = "configjs_error"
    CONFIGJS_BAD_HOST = "configjs_bad_host"
    EXTERNAL_API_INVALID = "external_api_invalid"
    EMBED_LIMITED = "embed_limited"
    WS_UPGRADE_REFUSED = "ws_upgrade_refused"
    XML_ERROR = "xml_error"
    STREAM_ERROR = "stream_error"
    SASL_NOT_ALLOWED = "sasl_not_allowed"
    BIND_FAILED = "bind_failed"
    FOCUS_UNAVAILABLE = "focus_unavailable"
    FOCUS_NOT_READY = "focus_not_ready"
    FOCUS_REFUSED = "focus_refused"
    ROOM_CREATION_RESTRICTED = "room_creation_restricted"
    LOBBY = "lobby"
    WAIT_FOR_HOST = "wait_for_host"
    ROOM_FULL = "room_full"
    PASSWORD_REQUIRED = "password_required"
    JOIN_REFUSED = "join_refused"
    JWT_NOT_ENFORCED = "jwt_not_enforced"
    JWT_OPTIONAL = "jwt_optional"
    MODERATION_CLAIM_IGNORED = "moderation_claim_ignored"
    MODERATION_NOT_GRANTED = "moderation_not_granted"
    MODERATION_UNKNOWN = "moderation_unknown"
    # The media path (STUN and TURN, monitor.checks.media).
    NO_STUN_SERVICE = "no_stun_service"
    STUN_TIMEOUT = "stun_timeout"
    STUN_ERROR = "stun_error"
    NO_TURN_SERVICE = "no_turn_service"
    TURN_UNAUTHORIZED = "turn_unauthorized"
    TURN_TIMEOUT = "turn_timeout"
    TURN_REFUSED = "turn_refused"
    TURN_TLS_ERROR = "turn_tls_error"
    TURN_QUOTA = "turn_quota"
    TURN_ERROR = "turn_error"
    # A TURN service allocates but does not relay (turn_relay, monitor.checks.media.relay).
    TURN_RELAY_FORBIDDEN = "turn_relay_forbidden"
    TURN_RELAY_TIMEOUT = "turn_relay_timeout"
    TURN_RELAY_UNREACHABLE = "turn_relay_unreachable"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Phase:
    """One timed step of a check."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: a reason code, a human detail and its phases."""

    check: Check
    reason: Reason
    detail: str = ""
    phases: tuple[Phase, ...] = ()

    @property
    def success(self) -> bool:
        return self.reason is Reason.OK


def skipped(checks: Iterable[Check], cause: str) -> tuple[CheckResult, ...]:
    """``checks`` not tried because ``cause`` (a check, a stage) failed before them."""
    return tuple(CheckResult(c, Reason.SKIPPED, f"not tried: {cause} failed") for c in checks)


@dataclass(frozen=True, slots=True)
class CertInfo:
    """Facts about the server's TLS certificate and session."""

    not_after: float
    tls_version: str
    subject: str = ""
    issuer: str = ""


@dataclass(frozen=True, slots=True)
class ConfigFacts:
    """What the server's config.js says about its signalling and embedding.

    URLs are absolute (resolved against the page URL as a browser does).
    """

    domain: str | None = None
    anonymousdomain: str | None = None
    authdomain: str | None = None
    muc: str | None = None
    # True when config.js names no MUC and ``muc`` is lib-jitsi-meet's
    # default, conference.<domain>.
    muc_fallback: bool = False
    focus: str | None = None
    bosh: str | None = None
    websocket: str | None = None
    token_auth_url: str | None = None
    disable_iframe_api: bool | None = None
    # p2p.enabled and the URLs of p2p.stunServers (at most 16).
    p2p_enabled: bool | None = None
    stun_servers: tuple[str, ...] = ()

    @property
    def signalling_url(self) -> str | None:
        return self.websocket or self.bosh


class FamilyResult(Protocol):
    """What a check family found beyond its checks' verdicts (its ``result``
    type names its family, so that a report holds one per family)."""

    family: ClassVar[str]


R = TypeVar("R", bound=FamilyResult)


@dataclass(frozen=True, slots=True)
class ServerReport:
    """Everything one ladder found out about one server.

    ``checks`` are the verdicts, in ladder order; ``up`` and ``first_failure``
    are judged from them by the ladder's table when the report is made
    (``monitor.checks.report``); ``results`` holds what each family found
    besides, by family name (read it with ``result``).
    """

    server: str
    started_at: float
    finished_at: float
    duration: float
    checks: tuple[CheckResult, ...]
    # Healthy: every check that decides the verdict and was run passed.
    up: bool = False
    # The first failing check that decides the verdict, if any.
    first_failure: CheckResult | None = None
    results: Mapping[str, FamilyResult] = field(default_factory=dict)

    def check(self, check: Check) -> CheckResult | None:
        for result in self.checks:
            if result.check is check:
                return result
        return None

    def result(self, kind: type[R]) -> R | None:
        """What the family of ``kind`` found (None: it did not run)."""
        found = self.results.get(kind.family)
        return found if isinstance(found, kind) else None
