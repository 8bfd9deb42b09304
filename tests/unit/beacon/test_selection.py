"""``nearest: users``: the users' p50 picks among the monitor's eligible members,
once enough prefixes are in; floods and drips change nothing."""

from __future__ import annotations

from monitor.beacon import Beacons
from monitor.beacon.limits import PREFIX_LIMIT
from monitor.ladder import PoolChange
from monitor.state import State
from tests.support.beacons import ORIGIN, address, beacons, body, probe_round, send, state
from tests.support.metrics import report

NOW = 1000.0  # the reports of tests.support.metrics finish at 1001.5


def honest(b: Beacons, prefixes: range, a_ms: float, b_ms: float, each: int = 2) -> None:
    for prefix in prefixes:
        for host in range(1, each + 1):
            b.receive(body({"a": a_ms, "b": b_ms}), ORIGIN, address(prefix, host), NOW)


def choice(s: State) -> str | None:
    return s.pool_states["moodle"].current


def test_without_enough_beacons_the_monitor_decides() -> None:
    s = state("users")
    b = beacons(s)
    honest(b, range(4), a_ms=150, b_ms=30)  # four prefixes: one short of min_prefixes
    made = probe_round(s)
    assert choice(s) == "a"
    assert made[0].reason is PoolChange.INITIAL
    assert "a by the monitor's RTT" in made[0].detail
    assert b.score("b", NOW) is None


def test_the_users_view_wins_once_the_window_fills() -> None:
    s = state("users")
    b = beacons(s)
    probe_round(s)
    assert choice(s) == "a"
    honest(b, range(5), a_ms=150, b_ms=30)
    made = probe_round(s)
    assert choice(s) == "b"
    (change,) = made
    assert change.reason is PoolChange.BETTER
    assert "b is nearer (30 ms vs 150 ms)" in change.detail
    assert "b by the users' p50, a by the users' p50" in change.detail
    by = {c.server: c.by for c in s.pool_candidates["moodle"]}
    assert by == {"a": "users", "b": "users"}


def test_a_monitor_pool_ignores_the_users() -> None:
    s = state("monitor")
    b = beacons(s)
    honest(b, range(5), a_ms=150, b_ms=30)
    made = probe_round(s) + probe_round(s)
    assert choice(s) == "a"
    assert "scored" not in made[0].detail  # a monitor pool's details are as before
    assert {c.by for c in s.pool_candidates["moodle"]} == {"monitor"}


def test_the_users_never_make_a_down_server_eligible() -> None:
    s = state("users")
    b = beacons(s)
    honest(b, range(10), a_ms=150, b_ms=5)
    s.record(report("a"))
    s.record(report("b", up=False))
    s.record(report("a"))
    assert choice(s) == "a"
    down = next(c for c in s.pool_candidates["moodle"] if c.server == "b")
    assert not down.eligible


def test_a_flood_of_10000_forged_beacons_from_one_prefix_changes_nothing() -> None:
    s = state("users")
    b = beacons(s)
    honest(b, range(5), a_ms=20, b_ms=80)
    probe_round(s)
    before = (choice(s), b.score("a", NOW), b.score("b", NOW))
    assert before[0] == "a"
    forged = body({"a": 60_000, "b": 1})
    # Many addresses, one /24.
    answers = [send(b, forged, address(200, n % 254 + 1), NOW) for n in range(10_000)]
    assert set(answers) == {"ok", "rate_limited"}
    refused = answers.count("rate_limited")
    assert refused == 10_000 - PREFIX_LIMIT.burst  # the prefix's burst got in
    # Even past the limiter (straight into the window) they are one capped vote.
    prefix = b._blind("127.0.200.0/24")
    for _ in range(10_000):
        b.window.add("a", prefix, "default", 60.0, NOW)
        b.window.add("b", prefix, "default", 0.001, NOW)
    made = probe_round(s) + probe_round(s)
    assert made == []
    assert (choice(s), b.score("a", NOW), b.score("b", NOW)) == before


def test_a_flood_alone_never_counts() -> None:
    s = state("users")
    b = beacons(s)
    for _ in range(10_000):
        b.window.add("b", b"one prefix", "default", 0.001, NOW)
    probe_round(s)
    probe_round(s)
    assert choice(s) == "a"
    assert b.score("b", NOW) is None


def test_a_slow_drip_from_a_few_prefixes_stays_under_the_cap() -> None:
    s = state("users")
    b = beacons(s)  # min_samples 10, min_prefixes 5: cap 2 per prefix
    # Four prefixes, one beacon a minute each for the whole hour: within every limit.
    for minute in range(60):
        for prefix in range(300, 304):
            b.receive(body({"a": 60_000, "b": 1}), ORIGIN, address(prefix), NOW + minute * 60)
    later = NOW + 3599
    stats = b.window.stats("b", later)
    assert stats.prefixes == 4
    assert stats.samples == 4 * b.policy.cap == 8
    assert b.score("b", later) is None
    # Beside five honest prefixes the drip is trimmed away.
    for prefix in range(5):
        b.receive(body({"a": 20, "b": 80}), ORIGIN, address(prefix), later)
    assert b.score("a", later) == 0.020
    assert b.score("b", later) == 0.080
