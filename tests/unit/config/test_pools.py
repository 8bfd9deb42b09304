"""Pools in the config: their settings, ``min_improvement`` as a percentage
and a duration, and the problems a bad pool is refused with."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, parse_config


def test_pool_config() -> None:
    cfg = parse_config(
        SERVERS + "pools:\n  - name: moodle\n    servers: [a, b]\n    embedding: true\n"
        "    tiers: [[a], [b]]\n    failover: {after: 2, min_improvement: 25%, hold_down: 5m}\n"
    )
    (pool,) = [p.settings() for p in cfg.pools]
    assert (pool.after, pool.min_improvement, pool.hold_down) == (2, 0.25, 300.0)
    assert pool.min_improvement_seconds == 0.010, "the absolute floor keeps its default"
    assert pool.require == ("web", "signalling")
    assert pool.tier_of("b") == 1


@pytest.mark.parametrize(
    ("written", "ratio", "seconds"),
    [("20% 15ms", 0.2, 0.015), ("30ms", 0.2, 0.030), ("0.1", 0.1, 0.010), ("'5%, 0s'", 0.05, 0.0)],
)
def test_min_improvement_takes_a_percentage_and_a_duration(
    written: str, ratio: float, seconds: float
) -> None:
    cfg = parse_config(
        SERVERS
        + f"pools:\n  - {{name: p, servers: [a, b], failover: {{min_improvement: {written}}}}}\n"
    )
    (pool,) = [p.settings() for p in cfg.pools]
    assert (pool.min_improvement, pool.min_improvement_seconds) == (ratio, seconds)


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ("  - {name: p, servers: [a, zz]}\n", "pools[0].servers[1]: no server named 'zz'"),
        ("  - {name: p, servers: [a], tiers: [[b]]}\n", "'b' is not a server of this pool"),
        ("  - {name: p, servers: [a]}\n  - {name: p, servers: [b]}\n", "used twice"),
        ("  - {name: p, servers: [a], require: [wbe]}\n", "pools[0].require[0]"),
        ("  - {name: p, servers: [a], failover: {min_improvement: 150%}}\n", "under 100%"),
        ("  - {name: p, servers: [a], failover: {min_improvement: 5% 1h}}\n", "at most 10s"),
        ("  - {name: p, servers: [a], failover: {min_improvement: 5% 1ms 2ms}}\n", "or both"),
    ],
)
def test_bad_pools(pools: str, message: str) -> None:
    found = problems(SERVERS + "pools:\n" + pools)
    assert any(message in p for p in found), found


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "s.yaml")
    return [str(p) for p in info.value.problems]


SERVERS = "servers:\n  - {name: a, url: 'https://a'}\n  - {name: b, url: 'https://b'}\n"
