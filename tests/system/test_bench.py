"""The benchmark suite runs (at a tiny size: a smoke test, no figures judged)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.support.paths import ROOT


async def test_every_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--json",
        str(out),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed, _ = await asyncio.wait_for(proc.communicate(), 600)
    text = printed.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures) == {
        "machine",
        "cpu",
        "scale",
        "accuracy",
        "metrics",
        "configjs",
        "config",
        "history",
    }, text[-3000:]
    assert "ratio to blackbox" in text
    assert "lag" in json.dumps(figures["scale"])
    assert figures["config"]["load_best_s"] > 0
    assert figures["config"]["stall_s"] >= 0
    assert figures["history"]["write"]["bytes_per_report"] > 0
    assert figures["history"]["pages"]["50"]["index"]["median_s"] > 0
