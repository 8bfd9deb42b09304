"""The selector's promises, checked on many generated fleets (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.selector import Candidate, PoolSettings, PoolState, decide

NAMES = ("a", "b", "c", "d", "e")


def pool(
    after: int = 3, improvement: float = 0.2, hold_down: float = 0.0, floor: float = 0.0
) -> PoolSettings:
    return PoolSettings(
        name="p",
        servers=NAMES,
        tiers=(("a", "b"), ("c", "d")),
        after=after,
        min_improvement=improvement,
        min_improvement_seconds=floor,
        hold_down=hold_down,
    )


candidate = st.builds(
    lambda name, eligible, score: (name, eligible, score),
    st.sampled_from(NAMES),
    st.booleans(),
    st.one_of(st.none(), st.floats(min_value=0.001, max_value=1.0)),
)


def fleet(entries: list[tuple[str, bool, float | None]], p: PoolSettings) -> list[Candidate]:
    seen: dict[str, Candidate] = {}
    for name, eligible, score in entries:
        seen[name] = Candidate(name, eligible, "" if eligible else "down", p.tier_of(name), score)
    return [seen.get(n) or Candidate(n, False, "down", p.tier_of(n), None) for n in NAMES]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(candidate, max_size=6), st.sampled_from(NAMES)), max_size=25))
def test_never_picks_an_ineligible_server(rounds: list[tuple[list, str]]) -> None:
    p = pool()
    state = PoolState()
    for now, (entries, round_of) in enumerate(rounds):
        candidates = fleet(entries, p)
        state, _ = decide(p, state, candidates, float(now), round_of=round_of)
        if state.current is not None and not state.stale:
            chosen = next(c for c in candidates if c.server == state.current)
            assert chosen.eligible


@settings(max_examples=300, deadline=None)
@given(st.lists(candidate, min_size=1, max_size=6))
def test_stable_inputs_settle_on_the_nearest_in_the_best_tier(
    entries: list[tuple[str, bool, float | None]],
) -> None:
    p = pool(after=2)
    candidates = fleet(entries, p)
    eligible = [c for c in candidates if c.eligible]
    state = PoolState()
    for now in range(20):
        state, _ = decide(p, state, candidates, float(now), round_of=state.current)
    if not eligible:
        assert state.current is None or state.stale
        return
    best_tier = min(c.tier for c in eligible)
    in_tier = [c for c in eligible if c.tier == best_tier]
    chosen = next(c for c in candidates if c.server == state.current)
    assert chosen.tier == best_tier
    scores = [c.score for c in in_tier if c.score is not None]
    if chosen.score is not None and scores:
        # never worse than the best by more than min_improvement allows
        assert chosen.score * (1 - p.min_improvement) < min(scores) or chosen.score == min(scores)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=0.005, max_value=0.5),
    st.lists(st.floats(min_value=0.0, max_value=0.19), min_size=1, max_size=4),
    st.integers(min_value=1, max_value=30),
)
def test_noise_within_min_improvement_never_switches(
    base: float, gains: list[float], rounds: int
) -> None:
    p = pool(after=1)
    state = PoolState(current="a", changed_at=0.0)
    for now in range(rounds):
        others = [
            Candidate(name, True, "", 0 if name == "b" else 1, base * (1 - gain))
            for name, gain in zip(("b", "c", "d"), gains, strict=False)
        ]
        candidates = [Candidate("a", True, "", 0, base), *others]
        state, decision = decide(p, state, candidates, float(now + 1), round_of="a")
        assert decision is None
        assert state.current == "a"


@settings(max_examples=300, deadline=None)
@given(st.lists(candidate, min_size=1, max_size=6), st.sampled_from(NAMES))
def test_an_ineligible_choice_is_replaced_in_the_same_round(
    entries: list[tuple[str, bool, float | None]], current: str
) -> None:
    p = pool(hold_down=3600)
    candidates = [c for c in fleet(entries, p) if c.server != current]
    candidates.append(Candidate(current, False, "down", p.tier_of(current), 0.001))
    state = PoolState(current=current, hold_until=10**9)
    state, decision = decide(p, state, candidates, 1.0, round_of="nobody")
    if any(c.eligible for c in candidates):
        assert decision is not None
        assert state.current != current
        assert not state.stale
    else:
        assert state.stale
        assert state.current == current, "the last choice stays visible"


def test_failover_and_hold_down_story() -> None:
    """a fails, b takes over at once; a recovers and is nearer, but only after hold-down
    and `after` rounds does the pool go back."""
    p = pool(after=2, hold_down=100.0)

    def fleet_now(a_up: bool) -> list[Candidate]:
        return [
            Candidate("a", a_up, "" if a_up else "web: connect_refused", 0, 0.010),
            Candidate("b", True, "", 0, 0.050),
        ]

    state, decision = decide(p, PoolState(), fleet_now(True), 0.0, round_of="a")
    assert (state.current, decision and decision.reason) == ("a", "initial")
    state, decision = decide(p, state, fleet_now(False), 10.0, round_of="a")
    assert (state.current, decision and decision.reason) == ("b", "ineligible")
    assert dict(state.failovers) == {"ineligible": 1}
    for now in (20.0, 50.0, 90.0):  # a is back and nearer, but within hold-down
        state, decision = decide(p, state, fleet_now(True), now, round_of="b")
        assert decision is None
        assert state.current == "b"
    state, decision = decide(p, state, fleet_now(True), 120.0, round_of="b")
    assert decision is None  # first round past hold-down
    state, decision = decide(p, state, fleet_now(True), 130.0, round_of="b")
    assert (state.current, decision and decision.reason) == ("a", "better")
    assert dict(state.failovers) == {"ineligible": 1, "better": 1}


def test_restart_keeps_an_unprobed_choice_quietly() -> None:
    p = pool()
    state = PoolState(current="a", hold_until=0.0, changed_at=1.0)
    candidates = [
        Candidate("a", False, "not probed yet", 0, None),
        Candidate("b", False, "web: connect_refused", 0, 0.01),
    ]
    state2, decision = decide(p, state, candidates, 5.0, round_of="b")
    assert decision is None
    assert state2 == state


def test_first_choice_waits_for_every_member() -> None:
    p = pool()
    early = [
        Candidate("a", False, "not probed yet", 0, None),
        Candidate("c", True, "", 1, 0.01),
    ]
    state, decision = decide(p, PoolState(), early, 1.0, round_of="c")
    assert (state.current, decision) == (None, None)
    known = [Candidate("a", True, "", 0, 0.05), Candidate("c", True, "", 1, 0.01)]
    state, decision = decide(p, state, known, 2.0, round_of="a")
    assert state.current == "a", "the first tier wins once it is known"
    assert decision is not None
    assert decision.reason == "initial"


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=0.0, max_value=0.5),
    st.lists(st.floats(min_value=-0.0099, max_value=0.0099), min_size=2, max_size=40),
)
def test_scores_that_differ_by_noise_under_the_floor_never_switch(
    base: float, noise: list[float]
) -> None:
    """Two members within the absolute floor (10 ms) of each other: whatever the
    ratio says, the pool keeps its choice, round after round."""
    p = pool(after=1, improvement=0.0, floor=0.010)
    state = PoolState()
    chosen = None
    for now, delta in enumerate(noise):
        candidates = [
            Candidate("a", True, "", 0, base),
            Candidate("b", True, "", 0, max(0.0, base + delta)),
        ]
        state, decision = decide(p, state, candidates, float(now), round_of=state.current)
        if chosen is None:
            assert decision is not None
            assert decision.reason == "initial"
            chosen = state.current
        else:
            assert decision is None
            assert state.current == chosen


def test_hold_down_follows_the_initial_choice() -> None:
    p = pool(after=1, hold_down=100.0, floor=0.010)
    far = [Candidate("a", True, "", 0, 0.200), Candidate("b", True, "", 0, 0.300)]
    state, decision = decide(p, PoolState(), far, 0.0, round_of="a")
    assert decision is not None
    assert (state.current, decision.reason) == ("a", "initial")
    nearer = [Candidate("a", True, "", 0, 0.200), Candidate("b", True, "", 0, 0.020)]
    for now in (10.0, 50.0, 99.0):
        state, decision = decide(p, state, nearer, now, round_of="a")
        assert decision is None
    state, decision = decide(p, state, nearer, 101.0, round_of="a")
    assert decision is not None
    assert (state.current, decision.reason) == ("b", "better")
    assert decision.detail == "b is nearer (20 ms vs 200 ms) for 1 rounds"


def test_leaving_none_eligible_is_recovered_whoever_comes_back() -> None:
    p = pool()
    state = PoolState(current="a", stale=True)
    candidates = [
        Candidate("a", False, "web: connect_refused", 0, 0.01),
        Candidate("b", True, "", 0, 0.02),
    ]
    state, decision = decide(p, state, candidates, 5.0, round_of="b")
    assert decision is not None
    assert (decision.previous, decision.chosen, decision.reason) == ("a", "b", "recovered")
    assert decision.detail == "b is eligible (the last choice was a)"
    assert not state.stale
    assert dict(state.failovers) == {}, "leaving none_eligible is no failover"


def test_no_none_eligible_while_a_member_is_not_probed_yet() -> None:
    p = pool()
    state = PoolState(current="a")
    candidates = [
        Candidate("a", False, "web: connect_refused", 0, 0.01),
        Candidate("b", False, "not probed yet", 0, None),
    ]
    assert decide(p, state, candidates, 5.0, round_of="a") == (state, None)


def test_a_restored_choice_that_is_down_waits_for_the_other_members() -> None:
    """After a restart the saved choice is down: the pool waits (bounded) for the
    members not probed yet, then fails over to the best of them."""
    p = pool()
    state = PoolState(current="a", wait_until=30.0)
    a_down = Candidate("a", False, "web: connect_refused", 0, None)
    early = [
        a_down,
        Candidate("b", False, "not probed yet", 0, None),
        Candidate("c", True, "", 1, 0.01),
    ]
    assert decide(p, state, early, 2.0, round_of="c") == (state, None)
    known = [a_down, Candidate("b", True, "", 0, 0.05), Candidate("c", True, "", 1, 0.01)]
    state2, decision = decide(p, state, known, 3.0, round_of="b")
    assert decision is not None
    assert (decision.chosen, decision.reason) == ("b", "ineligible"), "the first tier, once known"
    assert state2.current == "b"
    assert decision.detail == "a: web: connect_refused"
    # Past the bound the pool stops waiting for a member that never answers.
    state3, decision = decide(p, state, early, 31.0, round_of="c")
    assert decision is not None
    assert (state3.current, decision.reason) == ("c", "ineligible")
