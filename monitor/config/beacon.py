"""The ``beacon`` block: which pages may send users' timings, and how they count."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor import escape
from monitor.config.values import Duration
from monitor.domain import ALL_REGIONS, REGION

__all__ = ["BeaconSettings"]

# Regions at most: each is a few series per member on /metrics.
MAX_REGIONS = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _origin(value: str) -> str:
    """``https://host[:port]``, as a browser writes it in ``Origin``."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
    ):
        raise ValueError(f"{value!r} is not an origin (https://host or https://host:port)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has a port out of range") from None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    tail = "" if port in (None, default) else f":{port}"
    return f"{parts.scheme}://{host}{tail}"


class BeaconSettings(_Strict):
    """Users' round trips from ``/beacon.js`` on the LMS page (docs/beacon.md)."""

    # Pages allowed to send beacons (their Origin); empty: /beacon refuses all.
    origins: list[str] = Field(default_factory=list, max_length=64)
    # The regions a tag's data-region may name; a beacon naming another counts
    # under "default": the sender chooses it, and each one is a metrics series.
    regions: list[str] = Field(default_factory=list, max_length=MAX_REGIONS)
    # The sliding window of users' timings.
    window: Duration = 3600.0
    # Beacons needed per member in the window before users' timings count.
    min_samples: int = Field(default=30, ge=1, le=100_000)
    # Distinct client prefixes (/24, /48) needed, likewise.
    min_prefixes: int = Field(default=5, ge=1, le=10_000)
    # How often one browser samples at most (0s: on every page load).
    period: Duration = 1800.0

    @field_validator("origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(_origin(o) for o in v))

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        for region in v:
            if region == ALL_REGIONS or not REGION.fullmatch(region):
                raise ValueError(
                    f"{escape.plain(region, 40)!r} is not a region: 1 to 32 lower-case letters, "
                    f"digits, '-' or '_', starting with a letter or digit, not {ALL_REGIONS!r}"
                )
        return list(dict.fromkeys(v))

    @field_validator("window")
    @classmethod
    def _window(cls, v: float) -> float:
        if not 60 <= v <= 7 * 86400:
            raise ValueError("window must be between 1m and 168h")
        return v

    @field_validator("period")
    @classmethod
    def _period(cls, v: float) -> float:
        if not 0 <= v <= 7 * 86400:
            raise ValueError("period must be between 0s and 168h")
        return v
