"""What is known of each server source: shown on /healthz and in the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_PROBLEMS", "SourceHealth"]

# Entries a source skipped that are kept to show (the count is kept whole).
MAX_PROBLEMS = 10


@dataclass
class SourceHealth:
    """One source's last read: when it last worked, what went wrong, what it gives."""

    name: str
    type: str  # "files" or "http_sd"
    servers: int = 0  # the servers it gives now (from its last good read)
    ok: bool | None = None  # None: not read yet
    last_success: float | None = None
    last_attempt: float | None = None
    error: str = ""  # why the last read failed ("" when it worked)
    errors_total: int = 0
    skipped: int = 0  # entries of the last good read that were left out
    problems: list[str] = field(default_factory=list)  # the first of them, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "ok": self.ok,
            "servers": self.servers,
            "last_success": self.last_success,
            "last_attempt": self.last_attempt,
            "error": self.error or None,
            "errors_total": self.errors_total,
            "skipped": self.skipped,
            "problems": self.problems[:MAX_PROBLEMS],
        }
