"""Prometheus metrics, rendered from State in the text exposition format.

Nothing is mutated per probe: every scrape reads the latest reports, so a
server removed from the config disappears from the output at once, and no
label set outlives the state it describes. Names follow METRICS.md and mirror
blackbox_exporter's (``jitsi_`` instead of ``probe_``).

A fleet of 10,000 servers is some 650,000 series. The lines of each server
are formatted once per report and kept; a scrape joins the kept lines
family by family, so its cost is a copy of the body, not a formatting pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from monitor import __version__, escape
from monitor.config import Target
from monitor.ladder import FAILOVER_REASONS, LADDER
from monitor.model import MediaReport, ServerReport
from monitor.outbox import RESULTS
from monitor.selfmetrics import SelfMetrics
from monitor.state import State

__all__ = ["CONTENT_TYPE", "FAMILIES", "OPENMETRICS_CONTENT_TYPE", "Exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


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
)
FAMILIES: tuple[Family, ...] = SERVER_FAMILIES + POOL_FAMILIES + MONITOR_FAMILIES
_SERVER_FAMILY_NAMES = tuple(f.name for f in SERVER_FAMILIES)


# A label value as the text format wants it, control characters shown as escapes.
_esc = escape.label


def _num(value: float) -> str:
    """A sample value as Prometheus writes it."""
    value = float(value)
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _line(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    """One sample with its labels in name order (as the tests and promtool read them)."""
    inner = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(labels))
    return f"{name}{{{inner}}} {_num(value)}\n"


def _server_lines(
    target: Target,
    report: ServerReport | None,
    location: str,
    extra: tuple[str, ...],
    rtt_tcp: float | None,
    rtt_xmpp: float | None,
) -> tuple[bytes, ...]:
    """This server's lines, encoded, one string per family of SERVER_FAMILIES (in its order)."""
    loc = _esc(location)
    srv = _esc(target.name)
    ls = f'location="{loc}",server="{srv}"'
    user = dict(target.labels)
    domain = report.config.domain if report and report.config else None
    out: dict[str, str] = dict.fromkeys(_SERVER_FAMILY_NAMES, "")
    out["jitsi_server_info"] = _line(
        "jitsi_server_info",
        [
            ("server", target.name),
            ("location", location),
            ("kind", target.kind),
            ("domain", domain or ""),
            ("url", target.url),
            *((k, user.get(k, "")) for k in extra),
        ],
        1.0,
    )
    out["jitsi_probe_interval_seconds"] = (
        f"jitsi_probe_interval_seconds{{{ls}}} {_num(target.interval)}\n"
    )
    rtt = ""
    for method, value in (("tcp_connect", rtt_tcp), ("xmpp_ping", rtt_xmpp)):
        if value is not None:
            rtt += f'jitsi_rtt_seconds{{location="{loc}",method="{method}",server="{srv}"}} '
            rtt += f"{_num(value)}\n"
    out["jitsi_rtt_seconds"] = rtt
    if report is not None:
        _report_lines(out, report, loc, srv, ls)
    if len(out) != len(_SERVER_FAMILY_NAMES):
        raise KeyError(f"not a server family: {sorted(set(out) - set(_SERVER_FAMILY_NAMES))}")
    return tuple(out[name].encode("utf-8", "replace") for name in _SERVER_FAMILY_NAMES)


def _report_lines(out: dict[str, str], report: ServerReport, loc: str, srv: str, ls: str) -> None:
    """The lines that come from a report, by family name."""
    out["jitsi_server_up"] = f"jitsi_server_up{{{ls}}} {'1.0' if report.up else '0.0'}\n"
    out["jitsi_check_success"] = "".join(
        f'jitsi_check_success{{check="{r.check.value}",{ls}}} {"1.0" if r.success else "0.0"}\n'
        for r in report.checks
    )
    out["jitsi_check_reason_info"] = "".join(
        f'jitsi_check_reason_info{{check="{r.check.value}",location="{loc}",'
        f'reason="{r.reason.value}",server="{srv}"}} 1.0\n'
        for r in report.checks
    )
    out["jitsi_probe_duration_seconds"] = (
        f"jitsi_probe_duration_seconds{{{ls}}} {_num(report.duration)}\n"
    )
    for family, phases in (
        ("jitsi_http_duration_seconds", report.http_phases),
        ("jitsi_xmpp_duration_seconds", report.xmpp_phases),
    ):
        out[family] = "".join(
            f'{family}{{location="{loc}",phase="{_esc(p.name)}",server="{srv}"}} '
            f"{_num(p.seconds)}\n"
            for p in phases
        )
    out["jitsi_jwt_case_success"] = "".join(
        f'jitsi_jwt_case_success{{case="{_esc(case)}",{ls}}} {"1.0" if passed else "0.0"}\n'
        for case, passed in report.jwt_cases
    )
    out["jitsi_jwt_case_age_seconds"] = "".join(
        f'jitsi_jwt_case_age_seconds{{case="{_esc(case)}",{ls}}} {_num(round(age, 3))}\n'
        for case, age in report.jwt_ages
    )
    if report.http_status is not None:
        out["jitsi_http_status_code"] = (
            f"jitsi_http_status_code{{{ls}}} {_num(report.http_status)}\n"
        )
    if report.cert is not None:
        out["jitsi_ssl_earliest_cert_expiry"] = (
            f"jitsi_ssl_earliest_cert_expiry{{{ls}}} {_num(report.cert.not_after)}\n"
        )
        if report.cert.tls_version:
            version = _esc(report.cert.tls_version)
            out["jitsi_tls_version_info"] = (
                f'jitsi_tls_version_info{{{ls},version="{version}"}} 1.0\n'
            )
    if report.embed_limit_seconds is not None:
        out["jitsi_embed_limit_seconds"] = (
            f"jitsi_embed_limit_seconds{{{ls}}} {_num(report.embed_limit_seconds)}\n"
        )
    out["jitsi_last_probe_timestamp_seconds"] = (
        f"jitsi_last_probe_timestamp_seconds{{{ls}}} {_num(report.finished_at)}\n"
    )
    if report.media is not None:
        _media_lines(out, report.media, report.finished_at, ls)


def _media_line(name: str, ls: str, labels: list[tuple[str, str]], value: float) -> str:
    inner = "".join(f',{k}="{_esc(v)}"' for k, v in sorted(labels))
    return f"{name}{{{ls}{inner}}} {_num(value)}\n"


def _media_lines(out: dict[str, str], media: MediaReport, now: float, ls: str) -> None:
    """The media families: per service and transport (at most media.max_services of each)."""
    for service in media.services:
        out["jitsi_media_service_info"] += _media_line(
            "jitsi_media_service_info",
            ls,
            [
                ("service", service.name),
                ("transport", service.transport),
                ("type", service.type),
                ("source", service.source),
                ("credentials", "true" if service.credentials else "false"),
                ("google", "true" if service.google else "false"),
            ],
            1.0,
        )
    for probe in media.probes:
        service = probe.service
        labels = [("service", service.name), ("transport", service.transport)]
        labels.append(("type", service.type))
        out["jitsi_media_check_success"] += _media_line(
            "jitsi_media_check_success", ls, labels, probe.success
        )
        if probe.success and probe.seconds is not None:
            stun = service.type == "stun"
            family = "jitsi_stun_rtt_seconds" if stun else "jitsi_turn_allocate_seconds"
            out[family] += _media_line(family, ls, labels, probe.seconds)
    expiries = [s.expires for s in media.services if s.expires is not None]
    if expiries:
        out["jitsi_turn_credentials_expiry_timestamp_seconds"] = _media_line(
            "jitsi_turn_credentials_expiry_timestamp_seconds", ls, [], min(expiries)
        )
    out["jitsi_media_age_seconds"] = _media_line(
        "jitsi_media_age_seconds", ls, [], round(max(0.0, now - media.at), 3)
    )


@dataclass(slots=True)
class _Kept:
    """One server's formatted lines and what they were formatted from."""

    target: Target
    report: ServerReport | None
    rtt_tcp: float | None
    rtt_xmpp: float | None
    extra: tuple[str, ...]
    lines: tuple[bytes, ...]


class Exposition:
    """Renders a State as the text exposition format, keeping each server's lines."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._kept: dict[str, _Kept] = {}
        # The user label names of jitsi_server_info, for the current server list
        # (set_targets replaces the dict, so its identity tells when to recompute).
        self._extra: tuple[str, ...] = ()
        self._extra_of: dict[str, Target] | None = None
        # The server list whose kept lines were last checked one by one; until
        # it changes, the listener keeps them current (reports and round trips
        # change through State.record only).
        self._checked_of: dict[str, Target] | None = None
        # process_* and python_*, after the monitor's own families (monitor.selfmetrics).
        self._self = SelfMetrics()
        state.listeners.append(self._refresh)

    def _refresh(self, name: str) -> None:
        if name in self.state.targets:
            self._lines(name)

    def _lines(self, name: str) -> tuple[bytes, ...]:
        """The server's lines, formatted again if anything they show changed."""
        state = self.state
        target = state.targets[name]
        report = state.reports.get(name)
        rtt_tcp = state.rtt_tcp_connect.get(name)
        rtt_xmpp = state.rtt_xmpp_ping.get(name)
        extra = self._label_names()
        k = self._kept.get(name)
        if (
            k is None
            or k.target is not target
            or k.report is not report
            or k.rtt_tcp != rtt_tcp
            or k.rtt_xmpp != rtt_xmpp
            or k.extra != extra
        ):
            lines = _server_lines(target, report, state.location, extra, rtt_tcp, rtt_xmpp)
            k = self._kept[name] = _Kept(target, report, rtt_tcp, rtt_xmpp, extra, lines)
        return k.lines

    def _label_names(self) -> tuple[str, ...]:
        targets = self.state.targets
        if targets is not self._extra_of:
            self._extra_of = targets
            self._extra = tuple(sorted({key for t in targets.values() for key, _ in t.labels}))
        return self._extra

    def render(self, openmetrics: bool = False, monitor: bool = True) -> bytes:
        """The whole exposition; OpenMetrics (ending in ``# EOF``) when asked.

        Without ``monitor`` only the servers' families (what ``/probe`` answers).
        """
        return b"".join(self.parts(openmetrics, monitor))

    def parts(self, openmetrics: bool = False, monitor: bool = True) -> list[bytes]:
        """The exposition as the pieces ``render`` joins, to be sent one batch at a time.

        A snapshot: later reports do not change the list.
        """
        state = self.state
        targets = state.targets
        if targets is self._checked_of:
            # The same server list as at the last scrape: every report since
            # was formatted by the listener, so the kept lines are current.
            kept = self._kept
            rows = [kept[name].lines for name in targets]
        else:
            rows = [self._lines(name) for name in targets]
            self._checked_of = targets
        if len(self._kept) > len(targets):
            for gone in self._kept.keys() - targets.keys():
                del self._kept[gone]
        parts: list[bytes] = []
        # zip(*rows): one tuple per family, transposed in C.
        columns = zip(*rows, strict=True) if rows else ((),) * len(SERVER_FAMILIES)
        for family, column in zip(SERVER_FAMILIES, columns, strict=True):
            parts.append(family.header(openmetrics).encode())
            parts.extend(column)
        tail = ""
        if monitor:
            tail = self._pools(state.location, openmetrics) + self._monitor(
                state.location, openmetrics
            )
        parts.append(tail.encode("utf-8", "replace"))
        if monitor:
            parts.append(self._self.render(openmetrics))
        if openmetrics:
            parts.append(b"# EOF\n")
        return parts

    def _pools(self, loc: str, openmetrics: bool) -> str:
        state = self.state
        out: dict[str, list[str]] = {f.name: [] for f in POOL_FAMILIES}
        for name, pool in state.pools.items():
            pool_state = state.pool_states.get(name)
            candidates = state.pool_candidates.get(name, [])
            chosen = pool_state.current if pool_state and not pool_state.stale else None
            pl = [("pool", name), ("location", loc)]
            embedding = "true" if pool.embedding else "false"
            out["jitsi_pool_info"].append(
                _line("jitsi_pool_info", [*pl, ("embedding", embedding)], 1.0)
            )
            for server in pool.servers:
                out["jitsi_pool_selected"].append(
                    _line("jitsi_pool_selected", [*pl, ("server", server)], server == chosen)
                )
            eligible = float(sum(c.eligible for c in candidates))
            out["jitsi_pool_eligible_servers"].append(
                _line("jitsi_pool_eligible_servers", pl, eligible)
            )
            stale = bool(pool_state and pool_state.stale)
            out["jitsi_pool_stale"].append(_line("jitsi_pool_stale", pl, stale))
            counts = dict(pool_state.failovers) if pool_state else {}
            for reason in FAILOVER_REASONS:
                out["jitsi_pool_failovers_total"].append(
                    _line(
                        "jitsi_pool_failovers_total",
                        [*pl, ("reason", reason)],
                        counts.get(reason, 0),
                    )
                )
            for candidate in candidates:
                if candidate.score is not None:
                    out["jitsi_pool_server_score"].append(
                        _line(
                            "jitsi_pool_server_score",
                            [*pl, ("server", candidate.server)],
                            candidate.score,
                        )
                    )
        return "".join(f.header(openmetrics) + "".join(out[f.name]) for f in POOL_FAMILIES)

    def _outbox(self, lo: list[tuple[str, str]]) -> dict[str, str]:
        outbox, now = self.state.outbox, time.time()
        pending = outbox.pending()
        waiting = age = delivered = ""
        for sink, (count, oldest) in sorted(pending.items()):
            sl = [("sink", sink), *lo]
            waiting += _line("jitsi_monitor_outbox_pending_events", sl, count)
            waited = max(0.0, now - oldest) if oldest is not None else 0.0
            age += _line("jitsi_monitor_outbox_oldest_pending_age_seconds", sl, waited)
            for result in RESULTS:
                delivered += _line(
                    "jitsi_monitor_outbox_deliveries_total",
                    [*sl, ("result", result)],
                    outbox.results.get((sink, result), 0),
                )
        exits = "".join(
            _line("jitsi_monitor_command_exits_total", [("code", code), *lo], count)
            for code, count in sorted(self.state.command_exits.items())
        )
        return {
            "jitsi_monitor_outbox_pending_events": waiting,
            "jitsi_monitor_outbox_oldest_pending_age_seconds": age,
            "jitsi_monitor_outbox_deliveries_total": delivered,
            "jitsi_monitor_command_exits_total": exits,
        }

    def _sources(self, lo: list[tuple[str, str]]) -> dict[str, str]:
        """The server sources' lines (monitor.sources): one set per source."""
        out = dict.fromkeys(
            (
                "jitsi_monitor_source_servers",
                "jitsi_monitor_source_last_refresh_successful",
                "jitsi_monitor_source_last_success_timestamp_seconds",
                "jitsi_monitor_source_errors_total",
                "jitsi_monitor_source_skipped_servers",
            ),
            "",
        )
        for name, source in sorted(self.state.sources.items()):
            sl = [("source", name), *lo]
            out["jitsi_monitor_source_servers"] += _line(
                "jitsi_monitor_source_servers", [*sl, ("type", source.type)], source.servers
            )
            if source.ok is not None:
                out["jitsi_monitor_source_last_refresh_successful"] += _line(
                    "jitsi_monitor_source_last_refresh_successful", sl, source.ok
                )
            if source.last_success is not None:
                out["jitsi_monitor_source_last_success_timestamp_seconds"] += _line(
                    "jitsi_monitor_source_last_success_timestamp_seconds", sl, source.last_success
                )
            out["jitsi_monitor_source_errors_total"] += _line(
                "jitsi_monitor_source_errors_total", sl, source.errors_total
            )
            out["jitsi_monitor_source_skipped_servers"] += _line(
                "jitsi_monitor_source_skipped_servers", sl, source.skipped
            )
        return out

    def _monitor(self, loc: str, openmetrics: bool) -> str:
        state = self.state
        lo = [("location", loc)]
        out = {
            "jitsi_monitor_probe_errors_total": "".join(
                _line(
                    "jitsi_monitor_probe_errors_total",
                    [("check", row.check.value), *lo],
                    state.probe_errors.get(row.check.value, 0),
                )
                for row in LADDER
            ),
            "jitsi_monitor_schedule_lag_seconds": _line(
                "jitsi_monitor_schedule_lag_seconds", lo, state.schedule_lag
            ),
            "jitsi_monitor_config_last_reload_successful": _line(
                "jitsi_monitor_config_last_reload_successful", lo, state.config_reload_ok
            ),
            "jitsi_monitor_config_last_reload_success_timestamp_seconds": _line(
                "jitsi_monitor_config_last_reload_success_timestamp_seconds",
                lo,
                state.config_reload_time,
            ),
            "jitsi_monitor_build_info": _line(
                "jitsi_monitor_build_info", [("version", __version__), *lo], 1.0
            ),
            "jitsi_monitor_servers": _line("jitsi_monitor_servers", lo, len(state.targets)),
            **self._outbox(lo),
            **self._sources(lo),
        }
        return "".join(f.header(openmetrics) + out[f.name] for f in MONITOR_FAMILIES)
