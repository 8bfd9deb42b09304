"""Sharding a fleet and the /probe URL patterns, in-process: shards split a
fleet without overlap and keep pools whole, stay stable as it grows, and each
keeps its own state file. (GET /probe on a ``serve`` child is in
tests/system/test_ondemand.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_shard, shard_of, url_pattern
from tests.support.ondemand import fleet_config
from tests.support.sites import make_config


def test_url_patterns_stay_within_their_part() -> None:
    pattern = url_pattern("https://*.example.org/")
    assert pattern.fullmatch("https://meet.example.org/")
    assert pattern.fullmatch("https://MEET.example.org/")
    for url in (
        "https://evil.test/.example.org/",
        "https://meet.example.org.evil.test/",
        "https://meet.example.org:8443/",
        "http://meet.example.org/",
        "https://meet.example.org/room/",
    ):
        assert not pattern.fullmatch(url), url
    assert url_pattern("https://meet.example.org/*").fullmatch("https://meet.example.org/a/")
    with pytest.raises(ValueError, match="starting with https://"):
        url_pattern("*.example.org")


def test_shards_split_a_fleet_without_overlap_and_keep_pools_whole() -> None:
    pools = (
        "pools:\n"
        "  - {name: a, servers: [s1, s7, s30]}\n"
        "  - {name: b, servers: [s30, s42]}\n"
        "  - {name: c, servers: [s5, s6]}\n"
    )
    cfg = make_config(fleet_config(60, pools))
    seen: list[str] = []
    pool_homes: dict[str, int] = {}
    for index in (1, 2, 3):
        targets, shard_pools = cfg.fleet(parse_shard(f"{index}/3"))
        names = {t.name for t in targets}
        seen += names
        for pool in shard_pools:
            assert set(pool.servers) <= names, f"pool {pool.name} split"
            pool_homes[pool.name] = index
    assert sorted(seen) == sorted(f"s{i}" for i in range(60)), "every server in exactly one"
    assert set(pool_homes) == {"a", "b", "c"}
    assert pool_homes["a"] == pool_homes["b"], "pools sharing a server share a shard"
    sizes = [len(cfg.fleet(parse_shard(f"{i}/3"))[0]) for i in (1, 2, 3)]
    assert min(sizes) >= 10, sizes  # roughly even


def test_shards_are_stable_as_the_fleet_grows() -> None:
    before = shard_of(make_config(fleet_config(50)), 4)
    after = shard_of(make_config(fleet_config(80)), 4)
    assert all(after[name] == shard for name, shard in before.items())


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1/0", "x", "1/3/5"])
def test_a_bad_shard_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(bad)
    with pytest.raises(ConfigError, match="shard"):
        make_config(f"shard: '{bad}'\n" + fleet_config(2))


def test_each_shard_keeps_its_own_state_file(tmp_path: Path) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(fleet_config(2))
    cfg = load_config(path)
    assert cfg.state_path() == tmp_path / "jitsi-monitor-state.json"
    assert cfg.state_path(parse_shard("2/3")) == tmp_path / "jitsi-monitor-state.shard-2-of-3.json"
    assert cfg.state_path(parse_shard("1/1")) == tmp_path / "jitsi-monitor-state.json"
