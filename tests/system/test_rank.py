"""rank: a lab fleet with faults, latencies and an embed-limited member, in order."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.lab import LabOptions, LabServer
from monitor.sources.names import derive_name
from tests.support.cli import run_cli

# name: how the lab server behaves. The latencies are far apart (30 ms and
# more), so a loaded test machine cannot swap two neighbours.
FLEET: dict[str, LabOptions] = {
    "far": LabOptions(latency=0.120),
    "refused": LabOptions(fault="refuse"),
    "near": LabOptions(),
    "no-focus": LabOptions(fault="focus_down"),
    "embed-limited": LabOptions(latency=0.030, disable_iframe_api=True),
    "middle": LabOptions(latency=0.060),
}


@pytest.fixture
async def fleet() -> AsyncIterator[dict[str, LabServer]]:
    servers = {name: LabServer(options) for name, options in FLEET.items()}
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.stop()


def fleet_config(tmp_path: Path, fleet: dict[str, LabServer]) -> Path:
    lines = ["location: lab", "contact: ops@example.org", "servers:"]
    for name, server in fleet.items():
        lines += [f"  - {{name: {name}, url: '{server.url}', kind: public, timeout: 5s}}"]
    path = tmp_path / "servers.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def ranking(*args: str) -> list[dict[str, object]]:
    result = await run_cli("rank", "--json", *args)
    assert result.code == 0, result.err
    candidates: list[dict[str, object]] = json.loads(result.out)["candidates"]
    return candidates


async def test_rank_fit_first_then_nearest(tmp_path: Path, fleet: dict[str, LabServer]) -> None:
    config = fleet_config(tmp_path, fleet)
    ranked = await ranking(str(config), "--embedding")
    order = [c["server"] for c in ranked]
    assert order[:3] == ["near", "middle", "far"], ranked
    assert all(c["fit"] for c in ranked[:3])
    assert all(c["rtt_method"] == "xmpp_ping" for c in ranked[:3])
    out = {str(c["server"]): str(c["why"]) for c in ranked[3:]}
    assert set(out) == {"embed-limited", "no-focus", "refused"}
    assert not any(c["fit"] for c in ranked[3:])
    assert out["embed-limited"] == "embedded meetings end after 300 s"
    assert out["no-focus"].startswith("focus: focus_unavailable")
    assert out["refused"].startswith("web: connect_refused")
    assert ranked[-1]["server"] == "refused", "nothing measured: last"

    # Without --embedding the embed-limited server is fit, and in its place by distance.
    ranked = await ranking(str(config))
    assert [c["server"] for c in ranked][:4] == ["near", "embed-limited", "middle", "far"]

    # Politeness of kind: public: the probe never joins a room, so a
    # requirement of the join (muc) is one no public server meets.
    result = await run_cli("rank", "--json", str(config), "--require", "muc", "--top", "5")
    assert result.code == 1, "no fit server"
    data = json.loads(result.out)
    assert data["fit"] == 0
    assert len(data["candidates"]) == 5
    near = next(c for c in data["candidates"] if c["server"] == "near")
    assert near["why"] == "muc is not checked"


async def test_rank_table_and_pool(tmp_path: Path, fleet: dict[str, LabServer]) -> None:
    config = fleet_config(tmp_path, fleet)
    result = await run_cli("rank", str(config), "--embedding", "--top", "4")
    assert result.code == 0, result.err
    rows = [line for line in result.out.splitlines() if line.startswith("│")]
    # Those that are out follow, nearest first too: no-focus answers at once.
    assert [row.split("│")[2].strip() for row in rows] == ["near", "middle", "far", "no-focus"]
    assert "focus: focus_unavailable" in result.out
    assert "2 more not shown" in result.out

    result = await run_cli("rank", str(config), "--embedding", "--pool", "moodle", "--top", "2")
    assert result.code == 0, result.err
    pool_text = result.out
    cfg = parse_config(config.read_text() + pool_text, "with-pool.yaml")
    (pool,) = cfg.pools
    assert pool.servers == ["near", "middle"]
    assert pool.embedding is True
    assert pool.require == ["web", "signalling", "focus"]
    assert pool.tiers == [["near"], ["middle"]], "60 ms apart: the nearer is preferred"


async def test_rank_a_discovered_list(tmp_path: Path, fleet: dict[str, LabServer]) -> None:
    listing = tmp_path / "servers.lst"
    listing.write_text("".join(f"{s.url}\n" for s in fleet.values()))
    ranked = await ranking("--discover", str(listing), "--embedding", "--concurrency", "2")
    near = derive_name(fleet["near"].url)
    assert ranked[0]["server"] == near
    assert ranked[0]["url"] == fleet["near"].url
    result = await run_cli("rank", "--discover", str(listing), "--pool", "p", "--top", "3")
    assert result.code == 0, result.err
    cfg = parse_config(result.out, "pool.yaml")  # servers and pool, ready to paste
    assert len(cfg.servers) == 3
    assert cfg.pools[0].servers[0] == near
    assert all(s.kind == "public" for s in cfg.servers)


async def test_rank_without_any_fit_server_exits_1(tmp_path: Path) -> None:
    lab = LabServer(LabOptions(fault="focus_down"))
    await lab.start()
    try:
        config = tmp_path / "servers.yaml"
        config.write_text(f"servers:\n  - {{name: only, url: '{lab.url}', kind: public}}\n")
        result = await run_cli("rank", str(config), "--pool", "p")
        assert result.code == 1
        assert "no fit server" in result.err
        result = await run_cli("rank", str(config), "--country", "x")
        assert result.code == 2
        assert "go with --discover" in result.err
    finally:
        await lab.stop()
