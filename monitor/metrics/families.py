"""Every metric family the monitor exports: name, type and help, declared once.

A new family is one entry in SERVER_FAMILIES (one set of lines per server,
made in ``monitor.metrics.lines``), POOL_FAMILIES or MONITOR_FAMILIES (made by
``monitor.metrics.exposition.Exposition``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILIES", "MONITOR_FAMILIES", "POOL_FAMILIES", "SERVER_FAMILIES", "Family"]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its sample name, type and help text."""

    name: str
    type: str  # gauge, counter or info
    help: str

    def header(self, openmetrics: bool) -> str:
        """HELP and TYPE lines, in the text format or in OpenMetrics."""
        if not openmetrics:
            text = self.help.replace("\\", r"\\").replace("\n", r"\n")
            kind = "gauge" if self.type == "info" else self.type
            return f"# HELP {self.name} {text}\n# TYPE {self.name} {kind}\n"
        text = self.help.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        base = self.name
        if self.type == "info":
            base = base.removesuffix("_info")
        elif self.type == "counter":
            base = base.removesuffix("_total")
        return f"# HELP {base} {text}\n# TYPE {base} {self.type}\n"


def _gauge(name: str, help: str) -> Family:
    return Family(name, "gauge", help)


def _info(name: str, help: str) -> Family:
    return Family(name, "info", help)


# Per-server families, in output order (each server's lines are kept per family).
SERVER_FAMILIES: tuple[Family, ...] = (
    _info("jitsi_server_info", "Descriptive labels of a configured server; always 1."),
    _gauge("jitsi_server_up", "1 when the server's verdict is healthy, else 0."),
    _gauge("jitsi_check_success", "1 when the check passed, else 0."),
    _info("jitsi_check_reason_info", "The reason code the check ended with (a closed set)."),
    _gauge("jitsi_probe_duration_seconds", "How long the whole probe ladder took."),
    _gauge(
        "jitsi_http_duration_seconds",
        "Duration of each phase of the GET of the server's page, summed over redirects.",
    ),
    _gauge("jitsi_xmpp_duration_seconds", "Duration of each step of the signalling (XMPP) ladder."),
    _gauge(
        "jitsi_jwt_case_success", "1 when a case of the token check matrix came out as it must."
    ),
    _gauge(
        "jitsi_jwt_case_age_seconds",
        "How old the verdict of a token case was at the server's last report: 0 for the valid "
        "token (every round); the other cases run every jwt.matrix_interval and are carried "
        "in between.",
    ),
    _gauge("jitsi_http_status_code", "HTTP status of the server's page after redirects."),
    _gauge(
        "jitsi_ssl_earliest_cert_expiry", "Expiry of the server's certificate as a Unix timestamp."
    ),
    _info("jitsi_tls_version_info", "TLS version of the server's connection."),
    _gauge(
        "jitsi_embed_limit_seconds",
        "Seconds after which embedded meetings end (300 with disableIframeAPI), 0 if never.",
    ),
    _gauge(
        "jitsi_last_probe_timestamp_seconds",
        "When the last probe ladder finished, as a Unix timestamp.",
    ),
    _gauge(
        "jitsi_probe_interval_seconds", "How often the server is probed (its configured interval)."
    ),
    _gauge("jitsi_rtt_seconds", "Smoothed (EWMA) network round trip to the server."),
    # The media path (STUN, TURN): one series per service and transport probed.
    _info(
        "jitsi_media_service_info",
        "A STUN or TURN service of the server: where it came from (extdisco or config.js), "
        "whether credentials came with it, whether it is Google's; always 1.",
    ),
    _gauge(
        "jitsi_media_check_success",
        "1 when the service answered (STUN Binding, or TURN Allocate and release), else 0.",
    ),
    _gauge("jitsi_stun_rtt_seconds", "Round trip of the STUN Binding request."),
    _gauge(
        "jitsi_turn_allocate_seconds",
        "How long the TURN Allocate took with the announced credentials (401 challenge included).",
    ),
    _gauge(
        "jitsi_turn_credentials_expiry_timestamp_seconds",
        "When the TURN credentials the server announced expire, as a Unix timestamp.",
    ),
    _gauge(
        "jitsi_media_age_seconds",
        "How old the media verdicts were at the server's last report (they run every "
        "media.interval and are carried in between).",
    ),
)
POOL_FAMILIES: tuple[Family, ...] = (
    _info(
        "jitsi_pool_info",
        "A configured pool; always 1. embedding: true when it serves embedded meetings.",
    ),
    _gauge("jitsi_pool_selected", "1 for the pool's chosen server, 0 for the others."),
    _gauge("jitsi_pool_eligible_servers", "How many members of the pool are eligible now."),
    _gauge("jitsi_pool_stale", "1 when no member is eligible (the last choice is stale)."),
    Family("jitsi_pool_failovers_total", "counter", "Changes of the pool's choice, by reason."),
    _gauge(
        "jitsi_pool_server_score",
        "The score the selector used (smoothed RTT; lower is better).",
    ),
)
MONITOR_FAMILIES: tuple[Family, ...] = (
    Family(
        "jitsi_monitor_probe_errors_total",
        "counter",
        "Probes that failed through the monitor's own fault (should stay 0).",
    ),
    _gauge("jitsi_monitor_schedule_lag_seconds", "How late the last due probe ladder started."),
    _gauge(
        "jitsi_monitor_config_last_reload_successful", "1 when the last config (re)load succeeded."
    ),
    _gauge(
        "jitsi_monitor_config_last_reload_success_timestamp_seconds",
        "When the config was last loaded successfully, as a Unix timestamp.",
    ),
    _info("jitsi_monitor_build_info", "The monitor's version."),
    _gauge(
        "jitsi_monitor_servers", "How many servers this monitor probes (its shard's, if sharded)."
    ),
    _gauge(
        "jitsi_monitor_outbox_pending_events",
        "Failover events a sink (webhook or command) has not taken yet.",
    ),
    _gauge(
        "jitsi_monitor_outbox_oldest_pending_age_seconds",
        "How long the oldest event a sink has not taken has waited (0 when none waits).",
    ),
    Family(
        "jitsi_monitor_outbox_deliveries_total",
        "counter",
        "Deliveries of failover events to a sink, by result.",
    ),
    Family(
        "jitsi_monitor_command_exits_total",
        "counter",
        "Runs of the failover command, by exit code (or timeout, cannot_start).",
    ),
    _gauge(
        "jitsi_monitor_source_servers",
        "Servers a server source gives now (from its last good read).",
    ),
    _gauge(
        "jitsi_monitor_source_last_refresh_successful",
        "1 when the last read of a server source succeeded.",
    ),
    _gauge(
        "jitsi_monitor_source_last_success_timestamp_seconds",
        "When a server source was last read successfully, as a Unix timestamp.",
    ),
    Family("jitsi_monitor_source_errors_total", "counter", "Failed reads of a server source."),
    _gauge(
        "jitsi_monitor_source_skipped_servers",
        "Entries of a server source's last good read that were left out.",
    ),
    _gauge(
        "jitsi_monitor_history_up",
        "1 while the history behind the status pages is written, 0 once it is off.",
    ),
    Family(
        "jitsi_monitor_history_dropped_records_total",
        "counter",
        "Reports and pool events not kept in the history (queue full or write failed).",
    ),
    Family(
        "jitsi_monitor_history_errors_total",
        "counter",
        "Failed writes and prunes of the history (each logged).",
    ),
)
FAMILIES: tuple[Family, ...] = SERVER_FAMILIES + POOL_FAMILIES + MONITOR_FAMILIES
_SERVER_FAMILY_NAMES = tuple(f.name for f in SERVER_FAMILIES)
