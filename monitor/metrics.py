"""Prometheus metrics, rendered from State by a custom collector.

Nothing is mutated per probe: every scrape reads the latest reports, so a
server removed from the config disappears from the output at once, and no
label set outlives the state it describes. Names follow METRICS.md and mirror
blackbox_exporter's (``jitsi_`` instead of ``probe_``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.model import Check
from monitor.state import State

__all__ = ["StateCollector", "make_registry", "render"]

_CHECKS = tuple(Check)
_HTTP_PHASES = ("resolve", "connect", "tls", "processing", "transfer")


class StateCollector(Collector):
    """Yields every jitsi_* family from the current State."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        loc = state.location
        sl = ["server", "location"]

        extra = sorted({key for t in state.targets.values() for key, _ in t.labels})
        info = InfoMetricFamily(
            "jitsi_server",
            "Descriptive labels of a configured server; always 1.",
            labels=[*sl, "kind", "domain", "url", *extra],
        )
        up = GaugeMetricFamily(
            "jitsi_server_up", "1 when the server's verdict is healthy, else 0.", labels=sl
        )
        success = GaugeMetricFamily(
            "jitsi_check_success", "1 when the check passed, else 0.", labels=[*sl, "check"]
        )
        reason = InfoMetricFamily(
            "jitsi_check_reason",
            "The reason code the check ended with (a closed set).",
            labels=[*sl, "check", "reason"],
        )
        duration = GaugeMetricFamily(
            "jitsi_probe_duration_seconds",
            "How long the whole probe ladder took.",
            labels=sl,
            unit="seconds",
        )
        http = GaugeMetricFamily(
            "jitsi_http_duration_seconds",
            "Duration of each phase of the GET of the server's page, summed over redirects.",
            labels=[*sl, "phase"],
            unit="seconds",
        )
        status = GaugeMetricFamily(
            "jitsi_http_status_code", "HTTP status of the server's page after redirects.", labels=sl
        )
        expiry = GaugeMetricFamily(
            "jitsi_ssl_earliest_cert_expiry",
            "Expiry of the server's certificate as a Unix timestamp.",
            labels=sl,
        )
        tls = InfoMetricFamily(
            "jitsi_tls_version", "TLS version of the server's connection.", labels=[*sl, "version"]
        )
        embed = GaugeMetricFamily(
            "jitsi_embed_limit_seconds",
            "Seconds after which embedded meetings end (300 with disableIframeAPI), 0 if never.",
            labels=sl,
            unit="seconds",
        )
        last = GaugeMetricFamily(
            "jitsi_last_probe_timestamp_seconds",
            "When the last probe ladder finished, as a Unix timestamp.",
            labels=sl,
            unit="seconds",
        )
        jwt_case = GaugeMetricFamily(
            "jitsi_jwt_case_success",
            "1 when a case of the token check matrix came out as it must.",
            labels=[*sl, "case"],
        )
        xmpp = GaugeMetricFamily(
            "jitsi_xmpp_duration_seconds",
            "Duration of each step of the signalling (XMPP) ladder.",
            labels=[*sl, "phase"],
            unit="seconds",
        )
        interval = GaugeMetricFamily(
            "jitsi_probe_interval_seconds",
            "How often the server is probed (its configured interval).",
            labels=sl,
            unit="seconds",
        )
        rtt = GaugeMetricFamily(
            "jitsi_rtt_seconds",
            "Smoothed (EWMA) network round trip to the server.",
            labels=[*sl, "method"],
            unit="seconds",
        )

        for name, target in state.targets.items():
            report = state.reports.get(name)
            labels = dict(target.labels)
            domain = report.config.domain if report and report.config else None
            info.add_metric(
                [
                    name,
                    loc,
                    target.kind,
                    domain or "",
                    target.url,
                    *(labels.get(k, "") for k in extra),
                ],
                {},
            )
            interval.add_metric([name, loc], target.interval)
            if name in state.rtt_tcp_connect:
                rtt.add_metric([name, loc, "tcp_connect"], state.rtt_tcp_connect[name])
            if name in state.rtt_xmpp_ping:
                rtt.add_metric([name, loc, "xmpp_ping"], state.rtt_xmpp_ping[name])
            if report is None:
                continue
            up.add_metric([name, loc], 1.0 if report.up else 0.0)
            for result in report.checks:
                check = result.check.value
                success.add_metric([name, loc, check], 1.0 if result.success else 0.0)
                reason.add_metric([name, loc, check, result.reason.value], {})
            duration.add_metric([name, loc], report.duration)
            for phase in report.http_phases:
                http.add_metric([name, loc, phase.name], phase.seconds)
            for phase in report.xmpp_phases:
                xmpp.add_metric([name, loc, phase.name], phase.seconds)
            for case, passed in report.jwt_cases:
                jwt_case.add_metric([name, loc, case], 1.0 if passed else 0.0)
            if report.http_status is not None:
                status.add_metric([name, loc], float(report.http_status))
            if report.cert is not None:
                expiry.add_metric([name, loc], report.cert.not_after)
                if report.cert.tls_version:
                    tls.add_metric([name, loc, report.cert.tls_version], {})
            if report.embed_limit_seconds is not None:
                embed.add_metric([name, loc], float(report.embed_limit_seconds))
            last.add_metric([name, loc], report.finished_at)

        yield from (
            info,
            up,
            success,
            reason,
            duration,
            http,
            xmpp,
            jwt_case,
            status,
            expiry,
            tls,
            embed,
            last,
            interval,
            rtt,
        )
        yield from self._pool_metrics(loc)
        yield from self._monitor_metrics(loc)

    def _pool_metrics(self, loc: str) -> Iterator[Metric]:
        state = self.state
        pl = ["pool", "location"]
        pool_info = InfoMetricFamily(
            "jitsi_pool",
            "A configured pool; always 1. embedding: true when it serves embedded meetings.",
            labels=[*pl, "embedding"],
        )
        selected = GaugeMetricFamily(
            "jitsi_pool_selected",
            "1 for the pool's chosen server, 0 for the others.",
            labels=[*pl, "server"],
        )
        eligible = GaugeMetricFamily(
            "jitsi_pool_eligible_servers",
            "How many members of the pool are eligible now.",
            labels=pl,
        )
        stale = GaugeMetricFamily(
            "jitsi_pool_stale",
            "1 when no member is eligible (the last choice is stale).",
            labels=pl,
        )
        failovers = CounterMetricFamily(
            "jitsi_pool_failovers",
            "Changes of the pool's choice, by reason.",
            labels=[*pl, "reason"],
        )
        score = GaugeMetricFamily(
            "jitsi_pool_server_score",
            "The score the selector used (smoothed RTT; lower is better).",
            labels=[*pl, "server"],
            unit="seconds",
        )
        for name, pool in state.pools.items():
            pool_state = state.pool_states.get(name)
            candidates = state.pool_candidates.get(name, [])
            chosen = pool_state.current if pool_state and not pool_state.stale else None
            pool_info.add_metric([name, loc, "true" if pool.embedding else "false"], {})
            for server in pool.servers:
                selected.add_metric([name, loc, server], 1.0 if server == chosen else 0.0)
            eligible.add_metric([name, loc], float(sum(c.eligible for c in candidates)))
            stale.add_metric([name, loc], 1.0 if pool_state and pool_state.stale else 0.0)
            counts = dict(pool_state.failovers) if pool_state else {}
            for reason in ("ineligible", "better", "none_eligible"):
                failovers.add_metric([name, loc, reason], float(counts.get(reason, 0)))
            for candidate in candidates:
                if candidate.score is not None:
                    score.add_metric([name, loc, candidate.server], candidate.score)
        yield from (pool_info, selected, eligible, stale, failovers, score)

    def _monitor_metrics(self, loc: str) -> Iterator[Metric]:
        state = self.state
        errors = CounterMetricFamily(
            "jitsi_monitor_probe_errors",
            "Probes that failed through the monitor's own fault (should stay 0).",
            labels=["check", "location"],
        )
        for check in _CHECKS:
            errors.add_metric([check.value, loc], float(state.probe_errors.get(check.value, 0)))
        yield errors
        lag = GaugeMetricFamily(
            "jitsi_monitor_schedule_lag_seconds",
            "How late the last due probe ladder started.",
            labels=["location"],
            unit="seconds",
        )
        lag.add_metric([loc], state.schedule_lag)
        yield lag
        reload_ok = GaugeMetricFamily(
            "jitsi_monitor_config_last_reload_successful",
            "1 when the last config (re)load succeeded.",
            labels=["location"],
        )
        reload_ok.add_metric([loc], 1.0 if state.config_reload_ok else 0.0)
        yield reload_ok
        reload_time = GaugeMetricFamily(
            "jitsi_monitor_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully, as a Unix timestamp.",
            labels=["location"],
            unit="seconds",
        )
        reload_time.add_metric([loc], state.config_reload_time)
        yield reload_time
        build = InfoMetricFamily(
            "jitsi_monitor_build", "The monitor's version.", labels=["version", "location"]
        )
        build.add_metric([__version__, loc], {})
        yield build
        servers = GaugeMetricFamily(
            "jitsi_monitor_servers", "How many servers the config names.", labels=["location"]
        )
        servers.add_metric([loc], float(len(state.targets)))
        yield servers


def make_registry(state: State) -> CollectorRegistry:
    """A registry holding only this monitor's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state))
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition body and content type for an ``Accept`` header."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
