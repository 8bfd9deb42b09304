"""Pick the nearest healthy server of each pool, and fail over without flapping.

Pure logic, no I/O: ``decide`` takes a pool's settings, its state and what
is known of each member now, and returns the new state and, when the
choice changed, an event. The caller feeds it after every finished ladder
of a member.

- Eligible: every required check passed in the last ladder; for embedding
  pools, no embed limit.
- Among eligible members: the first tier that has any, then the lowest
  score (the smoothed round trip; lower is better).
- The current choice is kept while eligible. A better member replaces it
  only after ``after`` consecutive rounds of the current server in which it
  was better (in an earlier tier, or nearer by at least ``min_improvement``
  of the current score *and* ``min_improvement_seconds``), and not within
  ``hold_down`` of the last change of choice (the first one included). An
  ineligible choice is replaced at once; with no eligible member the pool
  has none, and its last choice stays visible as stale.
- Not knowing is not failing: while a member has not been probed yet, the
  pool never reports that no member is eligible, makes its first choice
  only once every member is known, and after a restart (``wait_until``)
  keeps a saved choice that turned out ineligible until the others have
  been probed too, so it fails over to the best of them, not the first.

The reasons of a change (``PoolChange``) mean one thing each:
``initial`` the pool's first choice; ``ineligible`` the chosen server is
no longer eligible and another takes its place; ``better`` another member
has been better for long enough; ``recovered`` a member is eligible again
after none was; ``none_eligible`` no member is eligible any more.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from monitor.checks import LADDER
from monitor.checks.web.probe import WebResult
from monitor.ladder import DEFAULT_REQUIRE, FAILOVER_REASONS, PoolChange
from monitor.model import ServerReport

__all__ = [
    "NOT_PROBED",
    "Candidate",
    "Decision",
    "PoolSettings",
    "PoolState",
    "decide",
    "judge",
]


@dataclass(frozen=True, slots=True)
class PoolSettings:
    name: str
    servers: tuple[str, ...]
    require: tuple[str, ...] = DEFAULT_REQUIRE
    embedding: bool = False
    tiers: tuple[tuple[str, ...], ...] = ()
    after: int = 3
    min_improvement: float = 0.2
    # ...and at least this much nearer, in seconds: no switching on jitter.
    min_improvement_seconds: float = 0.010
    hold_down: float = 600.0
    # Whose round trip scores members: the monitor's own, or the users'
    # (browser beacons, monitor.beacon) where enough of them are in.
    nearest: str = "monitor"

    def tier_of(self, server: str) -> int:
        for index, tier in enumerate(self.tiers):
            if server in tier:
                return index
        return len(self.tiers)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One member as the selector sees it now."""

    server: str
    eligible: bool
    why: str  # why not eligible ("" when eligible)
    tier: int
    score: float | None  # smoothed round trip in seconds; None when not measured
    by: str = "monitor"  # whose round trip ``score`` is: "monitor" or "users"


@dataclass(frozen=True, slots=True)
class PoolState:
    current: str | None = None
    stale: bool = False  # no member is eligible; ``current`` is the last choice
    challenger: str | None = None
    streak: int = 0
    hold_until: float = 0.0
    changed_at: float = 0.0
    # After a restart: until then, a restored choice that turned out
    # ineligible waits for the members not probed yet.
    wait_until: float = 0.0
    failovers: tuple[tuple[str, int], ...] = ()

    def count(self, reason: PoolChange) -> PoolState:
        counts = dict(self.failovers)
        counts[reason] = counts.get(reason, 0) + 1
        return dataclasses.replace(self, failovers=tuple(sorted(counts.items())))


@dataclass(frozen=True, slots=True)
class Decision:
    """A change of choice: to None when no member is eligible."""

    pool: str
    previous: str | None
    chosen: str | None
    reason: PoolChange
    detail: str
    at: float
    candidates: tuple[Candidate, ...] = field(default=())


NOT_PROBED = "not probed yet"


def judge(
    pool: PoolSettings,
    server: str,
    report: ServerReport | None,
    score: float | None,
    *,
    by: str = "monitor",
) -> Candidate:
    """Whether ``server`` may be chosen now, and why not.

    ``by`` says whose round trip ``score`` is; it never changes eligibility.
    """
    return dataclasses.replace(_judge(pool, server, report, score), by=by)


def _judge(
    pool: PoolSettings, server: str, report: ServerReport | None, score: float | None
) -> Candidate:
    tier = pool.tier_of(server)
    if report is None:
        return Candidate(server, False, NOT_PROBED, tier, score)
    for word in pool.require:
        # What each word of the pool's `require` list asks of a server.
        for check in LADDER.requirements.get(word, ()):
            result = report.check(check)
            if result is None:
                return Candidate(server, False, f"{check.value} is not checked", tier, score)
            if not result.success:
                why = f"{check.value}: {result.reason.value}"
                return Candidate(server, False, why, tier, score)
    web = report.result(WebResult)
    embed = web.embed_limit_seconds if web is not None else None
    if pool.embedding and embed != 0:
        why = "embed limit unknown" if embed is None else f"embedded meetings end after {embed} s"
        return Candidate(server, False, why, tier, score)
    return Candidate(server, True, "", tier, score)


def _key(candidate: Candidate, order: tuple[str, ...]) -> tuple[int, float, int]:
    score = candidate.score if candidate.score is not None else math.inf
    return (candidate.tier, score, order.index(candidate.server))


def _better(best: Candidate, current: Candidate, pool: PoolSettings) -> bool:
    if best.tier != current.tier:
        return best.tier < current.tier
    if best.score is None:
        return False
    if current.score is None:
        return True
    gain = current.score - best.score
    return gain >= current.score * pool.min_improvement and gain >= pool.min_improvement_seconds


def decide(
    pool: PoolSettings,
    state: PoolState,
    candidates: list[Candidate],
    now: float,
    *,
    round_of: str | None = None,
) -> tuple[PoolState, Decision | None]:
    """The pool's next state; ``round_of`` names the member whose ladder just ended.

    A round counts toward ``after`` only when it is the current choice's.
    """
    eligible = [c for c in candidates if c.eligible]
    by_name = {c.server: c for c in candidates}
    current = by_name.get(state.current) if state.current else None
    unprobed = any(c.why == NOT_PROBED for c in candidates)
    if current is not None and not state.stale and current.why == NOT_PROBED:
        # After a restart the choice is kept until its server has been probed:
        # not known is not the same as not eligible.
        return state, None
    if state.current is None and unprobed:
        return state, None  # the first choice waits until every member is known
    if not eligible:
        if state.stale or unprobed or (not candidates and state.current is None):
            # A member not probed yet may still be eligible; a pool with no
            # members yet (they come from server_sources) has nothing to judge.
            return state, None
        new = dataclasses.replace(state, stale=True, challenger=None, streak=0, changed_at=now)
        if state.current is None:
            return new, None  # never had a choice: nothing changed
        reasons = "; ".join(f"{c.server}: {c.why}" for c in candidates) or "the pool has no members"
        decision = Decision(
            pool.name,
            state.current,
            None,
            PoolChange.NONE_ELIGIBLE,
            reasons,
            now,
            tuple(candidates),
        )
        return new.count(PoolChange.NONE_ELIGIBLE), decision
    best = min(eligible, key=lambda c: _key(c, pool.servers))
    if state.stale:
        again = (
            "again" if best.server == state.current else f"(the last choice was {state.current})"
        )
        return _switch(
            pool,
            state,
            best,
            PoolChange.RECOVERED,
            f"{best.server} is eligible {again}",
            now,
            candidates,
        )
    if current is None or not current.eligible:
        if state.current is None:
            detail = f"{best.server} is the best eligible server{_scored_by(pool, best)}"
            return _switch(pool, state, best, PoolChange.INITIAL, detail, now, candidates)
        if unprobed and now < state.wait_until:
            return state, None  # after a restart: the others may be better still
        detail = (
            f"{state.current}: {current.why}"
            if current is not None
            else f"{state.current} is no longer a member of the pool"
        )
        return _switch(pool, state, best, PoolChange.INELIGIBLE, detail, now, candidates)
    if best.server == current.server:
        return dataclasses.replace(state, challenger=None, streak=0), None
    if not _better(best, current, pool):
        return dataclasses.replace(state, challenger=None, streak=0), None
    if round_of != current.server:
        return state, None  # only the current server's rounds count
    if now < state.hold_until:
        return dataclasses.replace(state, challenger=best.server, streak=0), None
    streak = state.streak + 1 if state.challenger == best.server else 1
    if streak < pool.after:
        return dataclasses.replace(state, challenger=best.server, streak=streak), None
    why = (
        f"{best.server} is in an earlier tier"
        if best.tier < current.tier
        else f"{best.server} is nearer ({_ms(best.score)} vs {_ms(current.score)}) "
        f"for {streak} rounds{_scored_by(pool, best, current)}"
    )
    return _switch(pool, state, best, PoolChange.BETTER, why, now, candidates)


def _switch(
    pool: PoolSettings,
    state: PoolState,
    best: Candidate,
    reason: PoolChange,
    detail: str,
    now: float,
    candidates: list[Candidate],
) -> tuple[PoolState, Decision | None]:
    if state.current == best.server and not state.stale:
        return state, None
    new = dataclasses.replace(
        state,
        current=best.server,
        stale=False,
        challenger=None,
        streak=0,
        hold_until=now + pool.hold_down,
        changed_at=now,
        wait_until=0.0,
    )
    if reason in FAILOVER_REASONS:
        new = new.count(reason)
    decision = Decision(
        pool.name, state.current, best.server, reason, detail, now, tuple(candidates)
    )
    return new, decision


def _scored_by(pool: PoolSettings, *candidates: Candidate) -> str:
    """For a ``nearest: users`` pool: whose round trip scored each named member."""
    if pool.nearest != "users":
        return ""
    words = {"users": "the users' p50", "monitor": "the monitor's RTT"}
    parts = [f"{c.server} by {words.get(c.by, c.by)}" for c in candidates]
    return f" (scored: {', '.join(parts)})"


def _ms(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds * 1000:.0f} ms"
