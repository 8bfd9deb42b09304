"""A pool of three lab servers, its config, and waiting for ``serve`` to choose."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from monitor.lab import LabServer, servers_yaml


def pool_config(tmp_path: Path, servers: list[LabServer]) -> Path:
    text = servers_yaml(servers, interval="1s", timeout="1s")
    text += (
        "pools:\n  - name: moodle\n    servers: [lab-1, lab-2, lab-3]\n"
        "    failover: {after: 2, min_improvement: 20% 10ms, hold_down: 1h}\n"
    )
    path = tmp_path / "servers.yaml"
    path.write_text(text)
    return path


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def wait_for_choice(base: str, want: str | None, timeout: float = 20) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        _, pool = await get_json(f"{base}/api/v1/pools/moodle")
        if pool["chosen"] == want and all(c["score_seconds"] for c in pool["candidates"]):
            return pool
        if pool["chosen"] == want and want is None:
            return pool
        assert loop.time() < end, f"the pool never chose {want}: {pool}"
        await asyncio.sleep(0.2)
