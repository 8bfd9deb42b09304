"""The ``signalling`` block of a server, and how it resolves (whether the ladder joins)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["SignallingSettings", "joins"]


class SignallingSettings(BaseModel):
    """How far the signalling (XMPP) part of the ladder goes for a server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    focus: bool = True
    # None: join for self-hosted and JaaS servers, not for public ones.
    join: bool | None = None


def joins(settings: SignallingSettings, kind: str) -> bool:
    """Whether the ladder joins a room (off without signalling; by default, for
    self-hosted and JaaS servers, not for public ones)."""
    if not settings.enabled:
        return False
    return settings.join if settings.join is not None else kind != "public"
