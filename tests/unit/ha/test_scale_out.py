"""Scale-out's pure parts: the shard of a server, the fair share, the order of
claims, and a verdict's trip through the database (untrusted on the way back)."""

from __future__ import annotations

import json

from monitor.ha.shards import claim_order, fair_share, shard_of
from monitor.ha.verdicts import MAX_VERDICT_BYTES, report_of, verdict_text
from monitor.selector import PoolSettings, judge
from monitor.state import State
from tests.support.metrics import report, targets


def test_every_server_has_one_shard_that_stays_put_as_others_come_and_go() -> None:
    names = [f"s{i}" for i in range(200)]
    split = shard_of(names, 12)
    assert set(split.values()) == set(range(12))  # 200 servers reach every shard
    assert shard_of(names[:50], 12) == {n: split[n] for n in names[:50]}


def test_the_fair_share_covers_every_shard_and_a_dead_instances_go_to_the_rest() -> None:
    assert [fair_share(12, n) for n in (0, 1, 2, 3, 5, 12, 20)] == [12, 12, 6, 4, 3, 1, 1]
    for count in range(1, 40):
        for live in range(1, 10):
            assert fair_share(count, live) * live >= count


def test_claims_start_at_a_place_of_the_instances_own_and_skip_what_it_holds() -> None:
    order = claim_order(12, "mon-a", {3, 4})
    assert sorted(order) == [s for s in range(12) if s not in {3, 4}]
    starts = {claim_order(12, f"mon-{c}", ())[0] for c in "abcdefgh"}
    assert len(starts) > 1


def test_a_verdict_comes_back_as_the_same_judgement() -> None:
    pool = PoolSettings("p", ("a",), require=("web",))
    for up in (True, False):
        original = report("a", up=up)
        verdict = report_of("a", verdict_text(original), 0.05)
        assert verdict is not None
        back, score = verdict
        assert score == 0.05
        assert back.up is original.up
        assert [(c.check, c.reason) for c in back.checks] == [
            (c.check, c.reason) for c in original.checks
        ]
        assert judge(pool, "a", back, score) == judge(pool, "a", original, score)


def test_an_unusable_verdict_is_refused_not_trusted() -> None:
    good = json.loads(verdict_text(report("a")))
    bad = [
        "not json",
        "[]",
        json.dumps({**good, "checks": [["web", "no_such_reason", ""]]}),
        json.dumps({**good, "checks": [["Not A Check", "ok", ""]]}),
        json.dumps({**good, "finished": "soon"}),
        json.dumps({**good, "embed": 1.5}),
        "x" * (MAX_VERDICT_BYTES + 1),
    ]
    for text in bad:
        assert report_of("a", text, 0.01) is None, text
    # A score that is not a sane round trip is dropped, the verdict kept.
    for score in (float("nan"), -1.0, 1e9, "0.1", None):
        verdict = report_of("a", verdict_text(report("a")), score)
        assert verdict is not None
        assert verdict[1] is None


def test_the_leader_judges_a_member_it_does_not_probe_by_the_shared_verdict() -> None:
    state = State()
    state.set_targets(targets("a", "b"))
    state.set_pools([PoolSettings("p", ("a", "b"), require=("web",), after=1)])
    state.probe_only(frozenset({"a"}))
    state.record(report("a", connect=0.05))
    assert state.select(None, 2000.0) == []  # b not known yet: no first choice
    verdict = report_of("b", verdict_text(report("b")), 0.001)
    assert verdict is not None
    state.shared["b"] = verdict
    (decision,) = state.select("b", 2000.0)
    assert decision.chosen == "b"  # the nearer, by the score its prober measured
    state.probe_only(frozenset({"b"}))
    assert "a" not in state.reports  # a's report goes with its shard
