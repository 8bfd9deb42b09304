"""Cause 4 of issue 13 through a ``serve`` child: it starts despite a FIFO
and deep nesting where its state file should be."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from tests.support.processes import Served, start_serve


async def test_serve_starts_despite_a_fifo_and_deep_nesting(
    tmp_path: Path, serve: list[Served]
) -> None:
    """End to end: serve listens within seconds and keeps a fresh state (cause 4)."""
    for hostile in ("fifo", "nesting"):
        workdir = tmp_path / hostile
        workdir.mkdir()
        state_path = workdir / "jitsi-monitor-state.json"
        if hostile == "fifo":
            os.mkfifo(state_path)
        else:
            state_path.write_text("[" * 200_000)
        config = workdir / "servers.yaml"
        config.write_text("servers: []\n")
        # A FIFO read would block the start for good: start_serve fails after
        # 30 s without a line, far longer than a start takes on a loaded machine.
        served = await start_serve(config, serve)
        proc, err = served.proc, served.log
        proc.terminate()
        assert proc.stderr is not None
        err += (await asyncio.wait_for(proc.stderr.read(), 15)).decode()
        await proc.wait()
        assert "Traceback" not in err
        assert "moved aside" in err
        assert json.loads(state_path.read_text())["version"] == 1  # saved afresh at the stop
