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

import time
from dataclasses import dataclass

from monitor import __version__
from monitor.beacon import Beacons
from monitor.beacon.metrics import beacon_metrics
from monitor.checks import FAMILIES, ladder_of
from monitor.checks.family import Family
from monitor.domain import Target
from monitor.ladder import FAILOVER_REASONS
from monitor.metrics.families import MONITOR_FAMILIES, POOL_FAMILIES
from monitor.metrics.lines import server_families
from monitor.metrics.lines import server_lines as _server_lines
from monitor.metrics.moodle import moodle_lines
from monitor.metrics.selfmetrics import SelfMetrics
from monitor.model import ServerReport
from monitor.outbox import RESULTS
from monitor.promtext import line as _line
from monitor.state import State

__all__ = ["CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "Exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


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

    def __init__(self, state: State, families: tuple[Family, ...] = FAMILIES) -> None:
        self.state = state
        # The check families whose lines it shows, their metric families and table.
        self.families = families
        self._server_families = server_families(families)
        self._names = tuple(f.name for f in self._server_families)
        self._ladder = ladder_of(families)
        self._kept: dict[str, _Kept] = {}
        # The user label names of jitsi_server_info, for the current server list
        # (set_targets replaces the dict, so its identity tells when to recompute).
        self._extra: tuple[str, ...] = ()
        self._extra_of: dict[str, Target] | None = None
        # The server list whose kept lines were last checked one by one; until
        # it changes, the listener keeps them current (reports and round trips
        # change through State.record only).
        self._checked_of: dict[str, Target] | None = None
        # process_* and python_*, after the monitor's own families (monitor.metrics.selfmetrics).
        self._self: SelfMetrics | None = None  # made at the first whole scrape
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
            lines = _server_lines(
                target,
                report,
                state.location,
                extra,
                rtt_tcp,
                rtt_xmpp,
                self.families,
                self._names,
            )
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
        if state.probed is not None:
            # Scale-out: only the servers this instance probes, so that a sum
            # across instances counts each server once (another instance shows the rest).
            rows = [self._lines(name) for name in targets if name in state.probed]
        elif targets is self._checked_of:
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
        families = self._server_families
        columns = zip(*rows, strict=True) if rows else ((),) * len(families)
        for family, column in zip(families, columns, strict=True):
            parts.append(family.header(openmetrics).encode())
            parts.extend(column)
        tail = ""
        if monitor:
            tail = self._pools(state.location, openmetrics) + self._monitor(
                state.location, openmetrics
            )
            if isinstance(state.users, Beacons):  # serve takes beacons
                tail += beacon_metrics(state.users, state.location, openmetrics)
        parts.append(tail.encode("utf-8", "replace"))
        if monitor:
            if self._self is None:
                self._self = SelfMetrics()
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

    def _history(self, lo: list[tuple[str, str]]) -> dict[str, str]:
        """The history writer's health; no lines when serve keeps no history."""
        history = self.state.history
        if history is None:
            return dict.fromkeys(
                (
                    "jitsi_monitor_history_up",
                    "jitsi_monitor_history_dropped_records_total",
                    "jitsi_monitor_history_errors_total",
                ),
                "",
            )
        return {
            "jitsi_monitor_history_up": _line("jitsi_monitor_history_up", lo, history.on),
            "jitsi_monitor_history_dropped_records_total": _line(
                "jitsi_monitor_history_dropped_records_total", lo, history.dropped
            ),
            "jitsi_monitor_history_errors_total": _line(
                "jitsi_monitor_history_errors_total", lo, history.errors
            ),
        }

    def _ha(self, lo: list[tuple[str, str]]) -> dict[str, str]:
        """High availability's lines; none when serve runs without an ha block."""
        names = (
            "jitsi_monitor_ha_leader",
            "jitsi_monitor_ha_epoch",
            "jitsi_monitor_ha_shards_owned",
            "jitsi_monitor_ha_shards",
            "jitsi_monitor_ha_instances",
            "jitsi_monitor_ha_database_up",
        )
        ha = self.state.ha
        if ha is None:
            return dict.fromkeys(names, "")
        values = (
            ha.role == "leader",
            ha.epoch,
            len(ha.shards),
            ha.shard_count,
            ha.instances,
            ha.database_up,
        )
        return {name: _line(name, lo, value) for name, value in zip(names, values, strict=True)}

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
                for row in self._ladder
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
            "jitsi_monitor_servers": _line(
                "jitsi_monitor_servers",
                lo,
                len(state.targets) if state.probed is None else len(state.probed),
            ),
            **self._outbox(lo),
            **self._sources(lo),
            **self._history(lo),
            **moodle_lines(state.moodle, lo),
            **self._ha(lo),
        }
        return "".join(f.header(openmetrics) + out[f.name] for f in MONITOR_FAMILIES)
