"""The ``history`` and ``status`` blocks: what serve keeps, and how its pages look."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.config.values import NAME, Duration

__all__ = ["HistorySettings", "StatusListen", "StatusSettings"]

_DAY = 86400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HistorySettings(_Strict):
    """The history file (SQLite) behind the status pages."""

    # Relative to the config file; empty: no history.
    file: str = "jitsi-monitor-history.sqlite"
    # Reports and the 10-minute latency buckets: kept this long (whole UTC days).
    retention: Duration = 7 * _DAY
    # Daily uptime, check changes, incidents and pool events: kept this long.
    keep_events: Duration = 90 * _DAY
    # Reports kept at most; beyond, the oldest days are dropped.
    max_rows: int = Field(default=120_000_000, ge=10_000, le=2_000_000_000)

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: float) -> float:
        if not _DAY <= v <= 90 * _DAY:
            raise ValueError("retention must be between 24h and 2160h (90 days)")
        return v

    @field_validator("keep_events")
    @classmethod
    def _keep_events(cls, v: float) -> float:
        if not 30 * _DAY <= v <= 800 * _DAY:
            raise ValueError("keep_events must be between 720h (30 days) and 19200h (800 days)")
        return v


class StatusListen(_Strict):
    """A listener of its own that serves the pages and badges only (no
    ``/metrics``, ``/probe``, JSON): the one to expose, while ``listen``
    stays on loopback."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


class StatusSettings(_Strict):
    """The status pages of ``serve``."""

    # Pages without URLs, labels, details and the servers named in ``private``.
    public: bool = False
    title: str = Field(default="Jitsi servers", min_length=1, max_length=100)
    # Servers left out of the public pages altogether.
    private: list[str] = Field(default_factory=list, max_length=10_000)
    # Servers per page of ``/``.
    page_size: int = Field(default=100, ge=10, le=1000)
    # A small script reloads the pages this often (0: never).
    refresh: Duration = 60.0
    # Serve the pages and badges (only) on this address too; none: only on ``listen``.
    listen: StatusListen | None = None

    @field_validator("private")
    @classmethod
    def _private(cls, v: list[str]) -> list[str]:
        for name in v:
            if not NAME.fullmatch(name):
                raise ValueError(f"{name[:80]!r} is not a server name")
        return v

    @field_validator("refresh")
    @classmethod
    def _refresh(cls, v: float) -> float:
        if v != 0 and not 10 <= v <= 3600:
            raise ValueError("refresh must be 0 (off) or between 10s and 1h")
        return v
