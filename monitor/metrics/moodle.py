"""The Moodle site's lines (``jitsi_moodle_*``): the active server, the reads, the switches.

No lines without a ``moodle:`` block. Nothing here is a secret: the labels are
the monitored server's name and the row id.
"""

from __future__ import annotations

import time
from typing import Final

from monitor.moodle.status import SWITCH_RESULTS, MoodleStatus
from monitor.promtext import line

__all__ = ["MOODLE_METRICS", "moodle_lines"]

MOODLE_METRICS: Final = (
    "jitsi_moodle_active_server",
    "jitsi_moodle_servers",
    "jitsi_moodle_read_successful",
    "jitsi_moodle_last_read_success_timestamp_seconds",
    "jitsi_moodle_read_age_seconds",
    "jitsi_moodle_read_errors_total",
    "jitsi_moodle_switches_total",
    "jitsi_moodle_outside_changes_total",
)


def moodle_lines(status: MoodleStatus | None, lo: list[tuple[str, str]]) -> dict[str, str]:
    out = dict.fromkeys(MOODLE_METRICS, "")
    if status is None:
        return out
    pl = [("pool", status.pool), *lo]
    if status.active_id is not None:
        out["jitsi_moodle_active_server"] = line(
            "jitsi_moodle_active_server",
            [
                ("moodle_server_id", str(status.active_id)),
                ("server", status.active_server or ""),
                *pl,
            ],
            1,
        )
    out["jitsi_moodle_servers"] = line("jitsi_moodle_servers", pl, status.servers)
    if status.ok is not None:
        out["jitsi_moodle_read_successful"] = line("jitsi_moodle_read_successful", pl, status.ok)
    if status.last_success is not None:
        out["jitsi_moodle_last_read_success_timestamp_seconds"] = line(
            "jitsi_moodle_last_read_success_timestamp_seconds", pl, status.last_success
        )
        out["jitsi_moodle_read_age_seconds"] = line(
            "jitsi_moodle_read_age_seconds", pl, max(0.0, time.time() - status.last_success)
        )
    out["jitsi_moodle_read_errors_total"] = line(
        "jitsi_moodle_read_errors_total", pl, status.read_errors_total
    )
    out["jitsi_moodle_switches_total"] = "".join(
        line("jitsi_moodle_switches_total", [*pl, ("result", r)], status.switches.get(r, 0))
        for r in SWITCH_RESULTS
    )
    out["jitsi_moodle_outside_changes_total"] = line(
        "jitsi_moodle_outside_changes_total", pl, status.outside_changes_total
    )
    return out
