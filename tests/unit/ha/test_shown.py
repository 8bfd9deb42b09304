"""What /healthz and /metrics show of HA: the role, the epoch, the instances."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp.test_utils import TestClient, TestServer

from monitor.metrics import Exposition
from monitor.server import make_app
from monitor.state import State
from tests.support.metrics import targets


@dataclass
class Shown:
    role: str = "leader"
    epoch: int = 7
    instance: str = "mon-a"
    leader: str = "mon-a"
    shards: list[int] = field(default_factory=lambda: [0])
    instances: int = 2
    database_up: bool = True
    shard_count: int = 1


def test_the_metrics_show_the_role_epoch_and_instances() -> None:
    state = State()
    assert b"jitsi_monitor_ha_leader{" not in Exposition(state).render()  # off: no series
    state.ha = Shown()
    text = Exposition(state).render().decode()
    for line in (
        'jitsi_monitor_ha_leader{location="default"} 1',
        'jitsi_monitor_ha_epoch{location="default"} 7',
        'jitsi_monitor_ha_shards_owned{location="default"} 1',
        'jitsi_monitor_ha_instances{location="default"} 2',
        'jitsi_monitor_ha_database_up{location="default"} 1',
        'jitsi_monitor_ha_shards{location="default"} 1',
    ):
        assert line in text, line


def test_with_scale_out_the_metrics_count_the_shards_owned_of_all() -> None:
    state = State()
    state.ha = Shown(shards=[2, 5, 9], shard_count=12)
    text = Exposition(state).render().decode()
    assert 'jitsi_monitor_ha_shards_owned{location="default"} 3' in text
    assert 'jitsi_monitor_ha_shards{location="default"} 12' in text


async def test_healthz_carries_the_ha_object_only_with_ha() -> None:
    state = State()
    async with TestClient(TestServer(make_app(state))) as client:
        assert "ha" not in await (await client.get("/healthz")).json()
        state.ha = Shown(role="follower", leader="mon-b", database_up=False)
        ha = (await (await client.get("/healthz")).json())["ha"]
    assert ha == {
        "role": "follower",
        "epoch": 7,
        "instance": "mon-a",
        "leader": "mon-b",
        "shards": [0],
        "instances": 2,
        "database": "down",
    }


def test_with_scale_out_an_instance_shows_only_the_servers_it_probes() -> None:
    state = State()
    state.set_targets(targets("a", "b", "c"))
    exposition = Exposition(state)
    assert exposition.render().decode().count("jitsi_server_info{") == 3
    state.probe_only(frozenset({"b"}))
    text = exposition.render().decode()
    assert text.count("jitsi_server_info{") == 1
    assert 'server="b"' in text
    assert 'server="a"' not in text
    assert 'jitsi_monitor_servers{location="default"} 1' in text
