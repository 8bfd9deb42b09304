"""The overview dashboard's Moodle row (scripts/dashboards.py lays it out).

What an admin of a Moodle site asks first during an outage: which server
Moodle's users are sent to now, whether the monitor still reads the site,
and whether its switches went through.
"""

from __future__ import annotations

from monitor.grafana import (
    POOLS,
    Json,
    across,
    query,
    sel,
    state_timeline,
    thresholds,
    timeseries,
    value_map,
)

__all__ = ["moodle_panels"]


def moodle_panels() -> list[tuple[Json, int, int]]:
    """(panel, width, height) of each panel, left to right."""
    return [
        (
            state_timeline(
                "Server Moodle uses",
                "The row of mod_jitsi's jitsi_servers that Moodle's mod_jitsi/server names, "
                "over time (jitsi_moodle_active_server), as read from the site's database: "
                "what Moodle's users join, whether the monitor or a person set it.",
                [
                    query(
                        across(
                            "max",
                            ("pool", "server", "moodle_server_id"),
                            sel("jitsi_moodle_active_server", POOLS),
                        ),
                        "{{pool}}: {{server}} (id {{moodle_server_id}})",
                    )
                ],
                mappings=value_map((1, "in use", "green")),
            ),
            12,
            6,
        ),
        (
            timeseries(
                "Reading the site",
                "1 while the last read of Moodle's database worked "
                "(jitsi_moodle_read_successful), and the age of the last good read "
                "(jitsi_moodle_read_age_seconds, right axis). On a failed read the last good "
                "rows stay; /healthz's moodle.last_read says why.",
                [
                    query(
                        across("min", ("pool",), sel("jitsi_moodle_read_successful", POOLS)),
                        "{{pool}} read ok",
                    ),
                    query(
                        across("max", ("pool",), sel("jitsi_moodle_read_age_seconds", POOLS)),
                        "{{pool}} age",
                    ),
                ],
                unit="short",
                defaults={"thresholds": thresholds("red", (1, "green"))},
            ),
            6,
            6,
        ),
        (
            timeseries(
                "Switches of Moodle's server",
                "Switches of mod_jitsi/server through admin/cli/cfg.php, by result "
                "(increase of jitsi_moodle_switches_total): done (Moodle reads the new id "
                "back), forced (config.php holds the setting), failed, timeout, missing, "
                "not_applied; and changes made by hand, which the monitor follows "
                "(jitsi_moodle_outside_changes_total).",
                [
                    query(
                        "sum by (location, pool, result) (increase("
                        f"{sel('jitsi_moodle_switches_total', POOLS)}[$__rate_interval]))",
                        "{{pool}}: {{result}}",
                    ),
                    # Every instance follows a hand change: one count, not one per instance.
                    query(
                        "max by (location, pool) (increase("
                        f"{sel('jitsi_moodle_outside_changes_total', POOLS)}[$__rate_interval]))",
                        "{{pool}}: by hand",
                    ),
                ],
                unit="short",
                defaults={"decimals": 0},
            ),
            6,
            6,
        ),
    ]
