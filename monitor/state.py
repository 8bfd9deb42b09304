"""What the monitor knows now: the latest report per server and a few counters.

The scheduler writes here; metrics, the CLI and the HTTP app only read.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from monitor.checks.signalling.xmpp import XmppResult
from monitor.checks.web.probe import WebResult
from monitor.domain import Target
from monitor.ladder import FAILOVER_REASONS, PoolChange
from monitor.model import Reason, ServerReport
from monitor.moodle.status import MoodleStatus
from monitor.outbox import Outbox
from monitor.selector import Candidate, Decision, PoolSettings, PoolState, decide, judge
from monitor.sources.health import SourceHealth
from monitor.statefile import UnusableFile, move_aside, read_json_bounded, write_json_atomic

__all__ = [
    "EWMA_ALPHA",
    "HISTORY_UNUSABLE",
    "HaHealth",
    "HistoryHealth",
    "State",
    "UserTimings",
    "load_state",
    "restore_decisions",
    "restore_pools",
    "restore_rtts",
    "save_state",
    "state_data",
]

# Weight of a new sample in the smoothed round trip: one noisy sample moves
# the average by a third of its deviation, a lasting change shows within a
# few rounds.
EWMA_ALPHA: Final = 0.3

log = logging.getLogger(__name__)


class HistoryHealth(Protocol):
    """What the metrics show of the history writer (``monitor.history.History``)."""

    @property
    def on(self) -> bool: ...
    @property
    def dropped(self) -> int: ...
    @property
    def errors(self) -> int: ...


class HaHealth(Protocol):
    """What /healthz and the metrics show of high availability (``monitor.ha.role.HaRole``)."""

    @property
    def role(self) -> str: ...
    @property
    def epoch(self) -> int: ...
    @property
    def instance(self) -> str: ...
    @property
    def leader(self) -> str: ...
    @property
    def shards(self) -> list[int]: ...
    @property
    def shard_count(self) -> int: ...
    @property
    def instances(self) -> int: ...
    @property
    def database_up(self) -> bool: ...


class UserTimings(Protocol):
    """The users' round trips (``monitor.beacon.Beacons``), for ``nearest: users`` pools."""

    def score(self, server: str, now: float | None = None) -> float | None: ...


@dataclass(frozen=True)
class _Unusable:
    """A history file that is configured but could not be opened (logged at start)."""

    on: bool = False
    dropped: int = 0
    errors: int = 0


HISTORY_UNUSABLE: Final[HistoryHealth] = _Unusable()


@dataclass
class State:
    """Latest results, smoothed round trips and the monitor's own health."""

    location: str = "default"
    shard: str | None = None  # "i/n" when this monitor probes one shard of the servers
    targets: dict[str, Target] = field(default_factory=dict)
    reports: dict[str, ServerReport] = field(default_factory=dict)
    rtt_tcp_connect: dict[str, float] = field(default_factory=dict)
    rtt_xmpp_ping: dict[str, float] = field(default_factory=dict)
    probe_errors: Counter[str] = field(default_factory=Counter)
    schedule_lag: float = 0.0
    config_reload_ok: bool = True
    config_reload_time: float = field(default_factory=time.time)
    pools: dict[str, PoolSettings] = field(default_factory=dict)
    # Called with a server's name after each recorded report (the metrics
    # exposition formats the server's lines then, not at the next scrape).
    listeners: list[Callable[[str], None]] = field(default_factory=list)
    pool_states: dict[str, PoolState] = field(default_factory=dict)
    pool_candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    # The latest decisions, newest last (what /api/v1/pools shows as "why");
    # kept by monitor.decisions.Decisions.
    decisions: deque[Decision] = field(default_factory=lambda: deque(maxlen=100))
    # Failover events not yet taken by every sink (kept in the state file).
    outbox: Outbox = field(default_factory=Outbox)
    # The failover command's exit codes ("timeout", "cannot_start" too).
    command_exits: Counter[str] = field(default_factory=Counter)
    # Each of server_sources, by name (kept by monitor.sources.watch.Sources).
    sources: dict[str, SourceHealth] = field(default_factory=dict)
    # The Moodle site of the moodle: block (monitor.sources.moodle); None without one.
    moodle: MoodleStatus | None = None
    # The history writer when serve keeps history (monitor.history).
    history: HistoryHealth | None = None
    # High availability when serve runs with an ha block (monitor.ha).
    ha: HaHealth | None = None
    # Scale-out (monitor.ha): the servers this instance probes (None: all), and the
    # verdicts and scores other instances wrote of the rest, which the leader
    # judges pools by.
    probed: frozenset[str] | None = None
    shared: dict[str, tuple[ServerReport, float | None]] = field(default_factory=dict)
    # Browser beacons when serve takes them (monitor.beacon): the score of a
    # ``nearest: users`` pool's members where enough users timed them.
    users: UserTimings | None = None

    def set_pools(self, pools: list[PoolSettings]) -> None:
        """Adopt the pools; a pool that stays keeps its choice and timers."""
        self.pools = {p.name: p for p in pools}
        for store in (self.pool_states, self.pool_candidates):
            for name in list(store):
                if name not in self.pools:
                    del store[name]
        for pool in pools:
            self.pool_states.setdefault(pool.name, PoolState())
            self.pool_candidates[pool.name] = self._candidates(pool)

    def score(self, server: str) -> float | None:
        """The smoothed round trip the selector compares: the XMPP ping where
        measured (a round trip through the server), else the TCP connect."""
        return self.rtt_xmpp_ping.get(server, self.rtt_tcp_connect.get(server))

    def _candidates(self, pool: PoolSettings, now: float | None = None) -> list[Candidate]:
        users = self.users if pool.nearest == "users" else None
        out = []
        for server in pool.servers:
            report, score, by = self.reports.get(server), self.score(server), "monitor"
            if report is None and server in self.shared:
                report, score = self.shared[server]  # probed by another instance
            if users is not None:
                # The users' p50 where enough of them timed it; else the monitor's.
                theirs = users.score(server, now)
                if theirs is not None:
                    score, by = theirs, "users"
            out.append(judge(pool, server, report, score, by=by))
        return out

    def set_targets(self, targets: list[Target]) -> None:
        """Adopt a new server list; forget everything about removed servers."""
        self.targets = {t.name: t for t in targets}
        for store in (self.reports, self.rtt_tcp_connect, self.rtt_xmpp_ping, self.shared):
            for name in list(store):
                if name not in self.targets:
                    del store[name]

    def probe_only(self, servers: frozenset[str]) -> None:
        """Scale-out: this instance probes ``servers`` now; the reports of others
        are forgotten (their verdicts come from whoever probes them)."""
        self.probed = servers
        for name in [n for n in self.reports if n not in servers]:
            del self.reports[name]

    def record(self, report: ServerReport) -> list[Decision]:
        """Keep a finished ladder's report; return the pool choices it changed
        (for ``monitor.decisions.Decisions.take``).

        Ignored if the server was removed from the config meanwhile.
        """
        if report.server not in self.targets:
            return []
        self.reports[report.server] = report
        for result in report.checks:
            if result.reason is Reason.INTERNAL_ERROR:
                self.probe_errors[result.check.value] += 1
        web, xmpp = report.result(WebResult), report.result(XmppResult)
        _smooth(self.rtt_tcp_connect, report.server, web.connect_rtt if web else None)
        _smooth(self.rtt_xmpp_ping, report.server, xmpp.ping_rtt if xmpp else None)
        for listener in self.listeners:
            try:
                listener(report.server)
            except Exception:  # our own bug: the other listeners (the metrics) still run
                log.exception("a listener of %s's report failed", report.server)
        return self.select(report.server, report.finished_at)

    def select(self, server: str | None, now: float) -> list[Decision]:
        """Re-judge the pools ``server`` belongs to (all pools when None)."""
        made = []
        for pool in self.pools.values():
            if server is not None and server not in pool.servers:
                continue
            candidates = self._candidates(pool, now)
            self.pool_candidates[pool.name] = candidates
            state, decision = decide(
                pool, self.pool_states.get(pool.name, PoolState()), candidates, now, round_of=server
            )
            self.pool_states[pool.name] = state
            if decision is not None:
                made.append(decision)
        return made


def _smooth(store: dict[str, float], server: str, sample: float | None) -> None:
    """Fold a sample into the server's EWMA; no sample, no change."""
    if sample is None:
        return
    old = store.get(server)
    store[server] = sample if old is None else old + EWMA_ALPHA * (sample - old)


# -- persistence ----------------------------------------------------------------

_VERSION = 1
# What a state file may be: 10,000 servers take some 1 MB.
STATE_MAX_BYTES: Final = 16 * 1024 * 1024
STATE_MAX_DEPTH: Final = 16
# Restored numbers are clamped: round trips under an hour, counts below 2**53.
_MAX_RTT: Final = 3600.0
_MAX_COUNT: Final = 2**53
# A restored decision's texts: names are the config's, details a line or two.
_MAX_NAME: Final = 256
_MAX_DETAIL: Final = 4096
_CHANGES: Final = frozenset(c.value for c in PoolChange)


def save_state(state: State, path: Path) -> None:
    """Write pool choices and smoothed RTTs, atomically and never through a
    planted link (``monitor.statefile.write_json_atomic``)."""
    write_json_atomic(path, state_data(state))


def state_data(state: State) -> dict[str, object]:
    """What the state file holds (HA keeps the same in its database: ``monitor.ha``)."""
    return {
        "version": _VERSION,
        "saved_at": time.time(),
        "rtt_tcp_connect": state.rtt_tcp_connect,
        "rtt_xmpp_ping": state.rtt_xmpp_ping,
        "pools": {name: dataclasses.asdict(p) for name, p in state.pool_states.items()},
        "outbox": state.outbox.dump(),
        # The latest changes (what /api/v1/pools shows as "why"); start hands
        # them to the history again, which keeps each once (see Service.start).
        "decisions": [_decision_dict(d) for d in state.decisions],
    }


def load_state(state: State, path: Path, first_probes_within: float = 0.0) -> str | None:
    """Restore what save_state wrote for the servers and pools still configured.

    A restored choice waits for the pool's members' first probes (they start
    within ``first_probes_within`` seconds and end within their timeout)
    before the pool gives it up for another member.
    Returns a problem to log, or None. A missing file is not a problem; a
    file that cannot be used (not a regular file, too large, too deep, not
    JSON) is moved aside (logged there) and the monitor starts afresh.
    Every restored number is checked and clamped.
    """
    try:
        data = read_json_bounded(path, STATE_MAX_BYTES, STATE_MAX_DEPTH)
    except FileNotFoundError:
        return None
    except UnusableFile as exc:
        move_aside(path, str(exc))
        return None
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}; starting afresh"
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return f"{path} is not a state file of this version; starting afresh"
    now = time.time()
    restore_rtts(state, data)
    restore_pools(state, data.get("pools"), now + first_probes_within)
    restore_decisions(state, data.get("decisions"))  # absent from state files of before
    # Sinks first (the notifier configures them): the outbox keeps only theirs.
    return state.outbox.restore(data.get("outbox"))


def restore_rtts(state: State, data: dict[str, object]) -> None:
    """Saved smoothed round trips of the servers still configured, each checked."""
    for key, store in (
        ("rtt_tcp_connect", state.rtt_tcp_connect),
        ("rtt_xmpp_ping", state.rtt_xmpp_ping),
    ):
        saved = data.get(key)
        for server, value in saved.items() if isinstance(saved, dict) else ():
            if server in state.targets and _finite(value) and 0 <= value < _MAX_RTT:
                store[server] = float(value)


def restore_pools(state: State, pools: object, probes_by: float) -> None:
    """Saved pool choices and timers, for the pools still configured, each number
    checked and clamped; a restored choice waits for its members probed by ``probes_by``."""
    now = time.time()
    for name, raw in pools.items() if isinstance(pools, dict) else ():
        pool = state.pools.get(name)
        if pool is None or not isinstance(raw, dict):
            continue
        hold_until, changed_at = raw.get("hold_until", 0.0), raw.get("changed_at", 0.0)
        failovers = raw.get("failovers", [])
        if not (_finite(hold_until) and _finite(changed_at) and isinstance(failovers, list)):
            continue
        timeouts = [state.targets[s].timeout for s in pool.servers if s in state.targets]
        state.pool_states[name] = PoolState(
            current=raw.get("current") if raw.get("current") in pool.servers else None,
            wait_until=probes_by + max(timeouts, default=0.0),
            stale=raw.get("stale") is True,
            # a hold-down never runs longer than the pool's own setting from now
            hold_until=max(0.0, min(float(hold_until), now + pool.hold_down)),
            changed_at=max(0.0, min(float(changed_at), now)),
            failovers=_counts(failovers),
        )


def restore_decisions(state: State, decisions: object) -> None:
    """Saved latest decisions of the pools still configured, appended to ``state.decisions``."""
    for raw in decisions[: state.decisions.maxlen] if isinstance(decisions, list) else ():
        decision = _decision(raw, state)
        if decision is not None:
            state.decisions.append(decision)


def _decision_dict(decision: Decision) -> dict[str, object]:
    return {
        "pool": decision.pool,
        "previous": decision.previous,
        "chosen": decision.chosen,
        "reason": decision.reason.value,
        "detail": decision.detail,
        "at": decision.at,
    }


def _decision(raw: object, state: State) -> Decision | None:
    """A saved decision of a pool still configured; None when anything is off."""
    if not isinstance(raw, dict):
        return None
    pool, at, detail = raw.get("pool"), raw.get("at"), raw.get("detail")
    if not (isinstance(pool, str) and pool in state.pools and _finite(at)):
        return None
    if not (isinstance(detail, str) and len(detail) <= _MAX_DETAIL):
        return None
    names = [raw.get("previous"), raw.get("chosen")]
    if not all(n is None or (isinstance(n, str) and len(n) <= _MAX_NAME) for n in names):
        return None
    previous, chosen = (n if isinstance(n, str) else None for n in names)
    reason = raw.get("reason")
    if reason not in _CHANGES or not isinstance(at, int | float):
        return None
    return Decision(pool, previous, chosen, PoolChange(reason), detail, float(at))


def _counts(items: list[object]) -> tuple[tuple[str, int], ...]:
    """Failover counts: known reasons only, whole numbers from 0 to 2**53."""
    known = {r.value for r in FAILOVER_REASONS}
    counts: dict[str, int] = {}
    for item in items:
        if isinstance(item, list) and len(item) == 2 and item[0] in known:
            value = item[1]
            if isinstance(value, int) and not isinstance(value, bool):
                counts[item[0]] = min(max(value, 0), _MAX_COUNT)
    return tuple(sorted(counts.items()))


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
