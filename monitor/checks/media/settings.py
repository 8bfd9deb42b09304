"""The ``media`` block: whether and how often the media path (STUN, TURN) is checked."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.domain import MediaTarget
from monitor.units import Duration

__all__ = ["MediaSettings", "MediaTarget", "resolve_media"]

# Most services one server's answer may have probed in a round.
MAX_SERVICES = 16


class MediaSettings(BaseModel):
    """The media checks of a server (``defaults.media`` or a server's ``media``).

    ``enabled`` and ``allow_private`` left unset follow the server's kind:
    on for ``self_hosted`` and ``jaas``, off for ``public``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    # The STUN and TURN probes run at most this often; their last verdicts are
    # carried in between (0: every round).
    interval: Duration = 300.0
    # One service's whole probe (resolution, Binding or Allocate, release) gets at most
    # this long; a TURN service's relay test (turn_relay) as long again after it.
    timeout: Duration = 5.0
    # At most this many services (announced and from config.js) are probed.
    max_services: int = Field(default=8, ge=1, le=MAX_SERVICES)
    # Probe services at private, loopback or link-local addresses.
    allow_private: bool | None = None

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if not 0 <= v <= 86400:
            raise ValueError("interval must be between 0s and 24h")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not 0.1 <= v <= 60:
            raise ValueError("timeout must be between 100ms and 60s")
        return v


def resolve_media(settings: MediaSettings, kind: str, signalling: bool) -> MediaTarget | None:
    """The media settings of a server of ``kind``; None when its media is not checked.

    Discovery needs the XMPP login, so a server without signalling has none.
    """
    enabled = settings.enabled if settings.enabled is not None else kind != "public"
    if not enabled or not signalling:
        return None
    private = settings.allow_private
    return MediaTarget(
        interval=settings.interval,
        timeout=settings.timeout,
        max_services=settings.max_services,
        allow_private=private if private is not None else kind == "self_hosted",
    )
