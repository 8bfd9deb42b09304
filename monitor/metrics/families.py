"""The metric families of the ladder, the pools and the monitor: name, type and help.

A check family declares its own metric families in its folder
(``monitor.checks.<family>.metrics``); ``monitor.metrics.lines.server_families``
puts them between the ladder's own (``SERVER_HEAD``, ``SERVER_TAIL``). The
pools' families (``POOL_FAMILIES``) and the monitor's (``MONITOR_FAMILIES``) are
made by ``monitor.metrics.exposition.Exposition``. ``MetricFamily`` itself is in
``monitor.promtext``.
"""

from __future__ import annotations

from monitor.promtext import MetricFamily, gauge, info

__all__ = [
    "MONITOR_FAMILIES",
    "POOL_FAMILIES",
    "SERVER_HEAD",
    "SERVER_TAIL",
]


# The ladder's own per-server families: those before the check families' and
# those after (see monitor.checks.family.Slot for where each family's go).
SERVER_HEAD: tuple[MetricFamily, ...] = (
    info("jitsi_server_info", "Descriptive labels of a configured server; always 1."),
    gauge("jitsi_server_up", "1 when the server's verdict is healthy, else 0."),
    gauge("jitsi_check_success", "1 when the check passed, else 0."),
    info("jitsi_check_reason_info", "The reason code the check ended with (a closed set)."),
    gauge("jitsi_probe_duration_seconds", "How long the whole probe ladder took."),
)
SERVER_TAIL: tuple[MetricFamily, ...] = (
    gauge(
        "jitsi_last_probe_timestamp_seconds",
        "When the last probe ladder finished, as a Unix timestamp.",
    ),
    gauge(
        "jitsi_probe_interval_seconds", "How often the server is probed (its configured interval)."
    ),
    gauge("jitsi_rtt_seconds", "Smoothed (EWMA) network round trip to the server."),
)
POOL_FAMILIES: tuple[MetricFamily, ...] = (
    info(
        "jitsi_pool_info",
        "A configured pool; always 1. embedding: true when it serves embedded meetings.",
    ),
    gauge("jitsi_pool_selected", "1 for the pool's chosen server, 0 for the others."),
    gauge("jitsi_pool_eligible_servers", "How many members of the pool are eligible now."),
    gauge("jitsi_pool_stale", "1 when no member is eligible (the last choice is stale)."),
    MetricFamily(
        "jitsi_pool_failovers_total", "counter", "Changes of the pool's choice, by reason."
    ),
    gauge(
        "jitsi_pool_server_score",
        "The score the selector used (smoothed RTT; lower is better).",
    ),
)
MONITOR_FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily(
        "jitsi_monitor_probe_errors_total",
        "counter",
        "Probes that failed through the monitor's own fault (should stay 0).",
    ),
    gauge("jitsi_monitor_schedule_lag_seconds", "How late the last due probe ladder started."),
    gauge(
        "jitsi_monitor_config_last_reload_successful", "1 when the last config (re)load succeeded."
    ),
    gauge(
        "jitsi_monitor_config_last_reload_success_timestamp_seconds",
        "When the config was last loaded successfully, as a Unix timestamp.",
    ),
    info("jitsi_monitor_build_info", "The monitor's version."),
    gauge(
        "jitsi_monitor_servers", "How many servers this monitor probes (its shard's, if sharded)."
    ),
    gauge(
        "jitsi_monitor_outbox_pending_events",
        "Failover events a sink (webhook or command) has not taken yet.",
    ),
    gauge(
        "jitsi_monitor_outbox_oldest_pending_age_seconds",
        "How long the oldest event a sink has not taken has waited (0 when none waits).",
    ),
    MetricFamily(
        "jitsi_monitor_outbox_deliveries_total",
        "counter",
        "Deliveries of failover events to a sink, by result.",
    ),
    MetricFamily(
        "jitsi_monitor_command_exits_total",
        "counter",
        "Runs of the failover command, by exit code (or timeout, cannot_start).",
    ),
    gauge(
        "jitsi_monitor_source_servers",
        "Servers a server source gives now (from its last good read).",
    ),
    gauge(
        "jitsi_monitor_source_last_refresh_successful",
        "1 when the last read of a server source succeeded.",
    ),
    gauge(
        "jitsi_monitor_source_last_success_timestamp_seconds",
        "When a server source was last read successfully, as a Unix timestamp.",
    ),
    MetricFamily(
        "jitsi_monitor_source_errors_total", "counter", "Failed reads of a server source."
    ),
    gauge(
        "jitsi_monitor_source_skipped_servers",
        "Entries of a server source's last good read that were left out.",
    ),
    gauge(
        "jitsi_monitor_history_up",
        "1 while the history behind the status pages is written, 0 once it is off.",
    ),
    MetricFamily(
        "jitsi_monitor_history_dropped_records_total",
        "counter",
        "Reports and pool events not kept in the history (queue full or write failed).",
    ),
    MetricFamily(
        "jitsi_monitor_history_errors_total",
        "counter",
        "Failed writes and prunes of the history (each logged).",
    ),
    info(
        "jitsi_moodle_active_server",
        "The server Moodle uses now (mod_jitsi/server): its row id and monitored name; always 1.",
    ),
    gauge("jitsi_moodle_servers", "Servers read from Moodle's jitsi_servers and monitored."),
    gauge("jitsi_moodle_read_successful", "1 when the last read of Moodle's database worked."),
    gauge(
        "jitsi_moodle_last_read_success_timestamp_seconds",
        "When Moodle's database was last read, as a Unix timestamp.",
    ),
    gauge("jitsi_moodle_read_age_seconds", "Seconds since the last good read of Moodle."),
    MetricFamily("jitsi_moodle_read_errors_total", "counter", "Failed reads of Moodle's database."),
    MetricFamily(
        "jitsi_moodle_switches_total",
        "counter",
        "Switches of mod_jitsi/server by result (done, forced, failed, timeout, ...).",
    ),
    MetricFamily(
        "jitsi_moodle_outside_changes_total",
        "counter",
        "Changes of mod_jitsi/server made outside the monitor (followed, never fought).",
    ),
    # High availability (monitor.ha): only when serve runs with an ha block.
    MetricFamily(
        "jitsi_monitor_ha_leader",
        "gauge",
        "1 while this instance leads (decides and notifies), 0 while it follows.",
    ),
    MetricFamily(
        "jitsi_monitor_ha_epoch",
        "gauge",
        "The leadership epoch: bumped each time an instance takes the lead.",
    ),
    MetricFamily(
        "jitsi_monitor_ha_shards_owned",
        "gauge",
        "Shards of the servers this instance probes (1 without scale-out: all of them).",
    ),
    MetricFamily(
        "jitsi_monitor_ha_shards",
        "gauge",
        "Shards the servers are spread over (ha.shards); 1 without scale-out.",
    ),
    MetricFamily(
        "jitsi_monitor_ha_instances",
        "gauge",
        "Instances connected to the HA database, as its last heartbeat saw them.",
    ),
    MetricFamily(
        "jitsi_monitor_ha_database_up",
        "gauge",
        "1 while the HA database answered the last heartbeat, 0 when it did not.",
    ),
)
