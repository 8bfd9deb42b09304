"""What ``/healthz``, the metrics, ``check`` and the status pages show of the Moodle site.

One ``MoodleStatus`` per serve (``State.moodle``), kept by the Moodle source
(monitor/sources/moodle.py, the reads) and the switch sink (monitor/moodle/sink.py,
the switches). It holds no secret: the DSN is shown without its password, and
error texts come from the reader, which scrubs them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["SWITCH_RESULTS", "MoodleStatus"]

# Every result a switch can have (monitor.moodle.switch), plus the sink's own:
# "unchanged" (Moodle already uses the chosen server) and "skipped" (the policy
# says no, or a newer event superseded it).
SWITCH_RESULTS: Final = (
    "done",
    "forced",
    "failed",
    "timeout",
    "missing",
    "not_applied",
    "unchanged",
    "skipped",
)
# How many row problems /healthz lists (the count is always whole).
MAX_PROBLEMS: Final = 20


@dataclass
class MoodleStatus:
    """The site as last read, and what the switch did."""

    database: str  # the DSN as shown (no password)
    pool: str
    policy: str  # when_down | better | never
    active_id: int | None = None  # mod_jitsi/server of the last good read
    active_server: str | None = None  # its monitored server's name, when it is one
    servers: int = 0
    not_provisioned: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problems_total: int = 0
    ok: bool | None = None  # the latest read's result; None before the first
    error: str = ""
    error_reason: str = ""
    last_attempt: float | None = None
    last_success: float | None = None
    reads_total: int = 0
    read_errors_total: int = 0
    switches: Counter[str] = field(default_factory=Counter)
    last_switch: dict[str, Any] | None = None
    outside_changes_total: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "pool": self.pool,
            "switch": self.policy,
            "active_id": self.active_id,
            "active_server": self.active_server,
            "servers": self.servers,
            "not_provisioned": list(self.not_provisioned),
            "problems": list(self.problems),
            "problems_total": self.problems_total,
            "last_read": {
                "ok": self.ok,
                "at": self.last_attempt,
                "reason": self.error_reason or None,
                "error": self.error or None,
            },
            "last_success": self.last_success,
            "switches": dict(sorted(self.switches.items())),
            "last_switch": self.last_switch,
            "outside_changes_total": self.outside_changes_total,
        }
