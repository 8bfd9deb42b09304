"""Rank candidate servers: fit first, then nearest, each with why it is out.

Fit means what a pool means by eligible (``monitor.selector.judge``: every
check of ``require`` passed, no embed limit for ``embedding``) and an up
verdict besides. Nearest is the selector's score: the XMPP ping round trip
where measured, else the TCP connect time. The state that judges is the
monitor's own (``monitor.state.State``), so a ranking and a pool agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.domain import Target
from monitor.model import ServerReport
from monitor.selector import PoolSettings
from monitor.state import State

__all__ = ["DEFAULT_REQUIRE", "Ranked", "rank", "tiers"]

# What a candidate must pass by default: the pool words of the ladder table.
DEFAULT_REQUIRE: tuple[str, ...] = ("web", "signalling", "focus")
# Two members of one tier differ by less than this (the pools' default
# min_improvement: 20 % and 10 ms), so the selector keeps to either.
_TIER_RATIO, _TIER_SECONDS = 0.2, 0.010


@dataclass(frozen=True, slots=True)
class Ranked:
    """One candidate, where it stands."""

    target: Target
    report: ServerReport
    fit: bool
    why: str  # why it is out ("" when fit)
    score: float | None  # seconds; None when nothing was measured
    method: str | None  # "xmpp_ping" or "tcp_connect"


def rank(
    targets: Sequence[Target],
    reports: Sequence[ServerReport],
    *,
    require: Sequence[str] = DEFAULT_REQUIRE,
    embedding: bool = False,
) -> list[Ranked]:
    """The candidates in order: fit ones by score, then the others by score."""
    state = State()
    state.set_targets(list(targets))
    pool = PoolSettings(
        name="rank",
        servers=tuple(t.name for t in targets),
        require=tuple(require),
        embedding=embedding,
    )
    state.set_pools([pool])
    for report in reports:
        state.record(report)
    state.select(None, 0.0)
    candidates = {c.server: c for c in state.pool_candidates["rank"]}
    out: list[Ranked] = []
    for target, report in zip(targets, reports, strict=True):
        candidate = candidates[target.name]
        failure = report.first_failure
        if failure is not None:
            why = f"{failure.check.value}: {failure.reason.value}: {failure.detail}"
        elif not report.up:
            why = "not every check of the verdict ran"
        else:
            why = candidate.why
        method = (
            "xmpp_ping"
            if target.name in state.rtt_xmpp_ping
            else "tcp_connect"
            if target.name in state.rtt_tcp_connect
            else None
        )
        out.append(Ranked(target, report, not why, why, state.score(target.name), method))
    order = {t.name: i for i, t in enumerate(targets)}
    out.sort(
        key=lambda r: (
            not r.fit,
            r.score is None,
            r.score or 0.0,
            order[r.target.name],
        )
    )
    return out


def tiers(best: Sequence[Ranked]) -> list[list[str]]:
    """Tiers for a pool of ``best`` (in rank order): a member joins the tier
    of the one before it unless that one is nearer by 20 % and 10 ms, the
    margin a pool needs by default to call a member better."""
    out: list[list[str]] = []
    head: float | None = None
    for ranked in best:
        score = ranked.score
        if out and score is not None and head is not None:
            gain = score - head
            if not (gain >= score * _TIER_RATIO and gain >= _TIER_SECONDS):
                out[-1].append(ranked.target.name)
                continue
        if out and score is None and head is None:
            out[-1].append(ranked.target.name)
            continue
        out.append([ranked.target.name])
        head = score
    return out
