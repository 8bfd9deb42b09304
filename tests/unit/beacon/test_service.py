"""serve takes beacons: the routes on its port, the block applied at start and on reload."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from monitor.config import load_config
from monitor.service import Service

CONFIG = """location: lab
defaults: {{interval: 1h, timeout: 1s, signalling: {{enabled: false}}}}
servers:
  - {{name: a, url: 'http://127.0.0.1:9/'}}
beacon: {{origins: ['https://lms.example'], min_samples: {samples}, period: 0s}}
pools:
  - {{name: moodle, servers: [a], nearest: users}}
"""


async def test_start_and_reload_apply_the_block(tmp_path: Path) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(CONFIG.format(samples=30))
    service = Service(path, load_config(path), host="127.0.0.1", port=0)
    await service.start()
    try:
        assert service.state.users is service.beacons
        assert service.beacons.policy.min_samples == 30
        base = f"http://127.0.0.1:{service.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/beacon.js") as resp:
                assert resp.status == 200
            headers = {"Origin": "https://lms.example"}
            async with session.get(f"{base}/beacon/pools/moodle", headers=headers) as resp:
                assert (await resp.json())["members"] == [
                    {"server": "a", "url": "http://127.0.0.1:9/favicon.ico"}
                ]
        path.write_text(CONFIG.format(samples=3))
        await service.reload()
        assert service.state.config_reload_ok
        assert service.beacons.policy.min_samples == 3
        assert service.beacons.window.cap == 1  # 3 samples over 5 prefixes, rounded up
    finally:
        await service.stop()
