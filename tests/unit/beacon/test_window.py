"""The window: per-prefix caps, the trimmed median, regions and expiry."""

from __future__ import annotations

from monitor.beacon.window import Window, quantile, trimmed_median


def test_the_trimmed_median_drops_each_end() -> None:
    assert trimmed_median([1, 2, 3, 4, 100]) == 3
    assert trimmed_median([1.0, 1.0, 50, 60, 70, 80, 90, 5000, 9000, 9000]) == 75
    assert trimmed_median([7.0]) == 7.0
    assert trimmed_median([]) is None


def test_quantiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert quantile(values, 0.5) == 5.0
    assert quantile(values, 0.9) == 9.0


def test_one_prefix_weighs_at_most_its_cap_and_one_vote() -> None:
    window = Window(3600.0, cap=3)
    for n in range(10_000):
        window.add("a", b"flood", "default", 0.001, 1000.0 + n * 0.01)
    for prefix in (b"p1", b"p2", b"p3"):
        window.add("a", prefix, "default", 0.050, 1100.0)
    stats = window.stats("a", 1200.0)
    assert stats.samples == 3 + 3
    assert stats.prefixes == 4
    # four votes (0.001, 0.05, 0.05, 0.05): one trimmed off nowhere (20 % of 4 < 1),
    # the median of the middle is still the honest one
    assert stats.score == 0.050


def test_regions_are_apart_and_together() -> None:
    window = Window(3600.0, cap=10)
    window.add("a", b"p1", "eu", 0.020, 1000.0)
    window.add("a", b"p2", "asia", 0.200, 1000.0)
    assert window.regions("a", 1000.0) == ["asia", "eu"]
    assert window.stats("a", 1000.0, "eu").p50 == 0.020
    assert window.stats("a", 1000.0, "asia").p90 == 0.200
    every = window.stats("a", 1000.0)
    assert (every.samples, every.prefixes) == (2, 2)


def test_samples_leave_with_the_window_and_with_their_server() -> None:
    window = Window(60.0, cap=10)
    window.add("a", b"p1", "default", 0.020, 1000.0)
    window.add("b", b"p1", "default", 0.020, 1000.0)
    assert window.stats("a", 1059.0).samples == 1
    assert window.stats("a", 1061.0).samples == 0
    window.forget(["a"])
    assert window.servers() == ["a"]
