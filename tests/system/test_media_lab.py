"""The media column of ``check`` (a child process) against lab servers: the
table and the JSON, and a pool that requires media."""

from __future__ import annotations

import json
import re
from pathlib import Path

from monitor.lab import servers_yaml
from monitor.lab.media import rest_services
from tests.support.cli import run_cli
from tests.support.lab import Lab
from tests.support.sites import free_port


async def test_check_shows_the_media_column_and_json(lab: Lab, tmp_path: Path) -> None:
    server = await lab(media=True)
    config = tmp_path / "servers.yaml"
    config.write_text(servers_yaml([server]))
    table = await run_cli("check", str(config))
    assert table.code == 0, table.err
    assert "media" in table.out
    assert re.search(r"STUN \d+ ms; TURN udp \d+ ms", table.out), table.out
    as_json = await run_cli("check", "--json", str(config))
    (entry,) = json.loads(as_json.out)["servers"]
    assert [p["reason"] for p in entry["media"]["probes"]] == ["ok", "ok"]
    assert {c["check"]: c["reason"] for c in entry["checks"]}["turn"] == "ok"


async def test_a_pool_that_requires_media(lab: Lab, tmp_path: Path) -> None:
    good = await lab(media=True)
    # announces a TURN server whose port is closed
    bad = await lab(services=rest_services("127.0.0.1", free_port(), "s", tcp=False))
    config = tmp_path / "servers.yaml"
    config.write_text(
        servers_yaml([bad, good])
        + "pools:\n  - name: school\n    servers: [lab-1, lab-2]\n"
        + "    require: [web, signalling, media]\n"
    )
    result = await run_cli("check", "--json", str(config))
    out = json.loads(result.out)
    assert [s["up"] for s in out["servers"]] == [True, True]
    (pool,) = out["pools"]
    assert pool["chosen"] == "lab-2"
    (why,) = [c["why"] for c in pool["candidates"] if not c["eligible"]]
    assert why == "stun: stun_error"  # the first of its media checks that failed
