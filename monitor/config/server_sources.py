"""The ``server_sources`` of a config: where more servers come from.

Kept apart from ``schema`` (the models of the rest of the file); the
sources themselves run in ``monitor.sources``.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.config.values import LABEL, NAME, RESERVED_LABELS, Duration, Size

__all__ = ["ServerSourceConfig", "check_labels"]


def check_labels(v: dict[str, str]) -> dict[str, str]:
    """A server's extra labels: valid Prometheus label names, none of the monitor's own."""
    for key in v:
        if not LABEL.fullmatch(key) or key.startswith("__"):
            raise ValueError(f"label name {key!r} is not a valid Prometheus label name")
        if key in RESERVED_LABELS:
            raise ValueError(f"label name {key!r} is used by the monitor itself")
    return v


class ServerSourceConfig(BaseModel):
    """Where more servers come from: files watched for changes, or an HTTP
    endpoint answering Prometheus HTTP service discovery's JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    # A glob relative to the config file, e.g. servers.d/*.yaml: each file a
    # list of servers in the schema of ``servers``.
    files: str | None = Field(default=None, min_length=1, max_length=1000)
    # A URL answering [{"targets": [...], "labels": {...}}].
    http_sd: str | None = None
    # How often the files are looked at, or the endpoint asked (default:
    # 5s for files, 60s for http_sd).
    refresh: Duration | None = None
    # Longest one read or request may take.
    timeout: Duration = 10.0
    # Largest file or answer taken, and most servers one source may give.
    max_bytes: Size = 4 * 1024 * 1024
    max_servers: int = Field(default=10_000, ge=1, le=100_000)
    # http_sd: the kind of its servers (a target's ``kind`` label overrides it).
    kind: Literal["public", "self_hosted", "jaas"] = "self_hosted"
    # Added to the labels of every server of this source.
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.fullmatch(v):
            raise ValueError("a source name is 1 to 64 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("http_sd")
    @classmethod
    def _http_sd(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("http_sd is a URL starting with https:// or http://")
        if parts.username or parts.password:
            raise ValueError("http_sd must not carry a user name or password")
        return v

    @field_validator("refresh")
    @classmethod
    def _refresh(cls, v: float | None) -> float | None:
        if v is not None and not 1 <= v <= 86400:
            raise ValueError("refresh must be between 1s and 24h")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        if not 0 < v <= 300:
            raise ValueError("timeout must be more than 0s and at most 5m")
        return v

    @field_validator("max_bytes")
    @classmethod
    def _max_bytes(cls, v: int) -> int:
        if not 1024 <= v <= 64 * 1024 * 1024:
            raise ValueError("max_bytes must be between 1KiB and 64MiB")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_labels(v)

    @model_validator(mode="after")
    def _one_kind(self) -> ServerSourceConfig:
        if (self.files is None) == (self.http_sd is None):
            raise ValueError("a source has either files or http_sd")
        return self

    @property
    def type(self) -> str:
        return "files" if self.files is not None else "http_sd"

    @property
    def every(self) -> float:
        """Seconds between two looks at the source."""
        if self.refresh is not None:
            return self.refresh
        return 5.0 if self.files is not None else 60.0
