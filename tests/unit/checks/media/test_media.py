"""The media stage when signalling is down: STUN and TURN are skipped, and
the detail says why. (The media path against a real Prosody and coturn is in
tests/system/test_media.py.)"""

from __future__ import annotations

import asyncio

from monitor.model import Check, Reason
from monitor.runner import Runner
from tests.support.media import detail, reason, rounds
from tests.support.sites import StartSite, jitsi_app, make_config


async def test_signalling_down_skips_media(start_site: StartSite, runner_for: list[Runner]) -> None:
    js = "var config = { hosts: { domain: 'x.test' }, websocket: 'ws://127.0.0.1:9/ws' };"
    page = await start_site(jitsi_app(js))
    cfg = make_config(f"servers:\n  - name: s\n    url: {page.url}\n    timeout: 3s\n")
    (report,) = await rounds(cfg, runner_for)
    assert reason(report, Check.SIGNALLING) is not Reason.OK
    assert reason(report, Check.STUN) is Reason.SKIPPED
    assert reason(report, Check.TURN) is Reason.SKIPPED
    assert "signalling" in detail(report, Check.TURN)
    assert asyncio.get_running_loop()  # the runner closed cleanly (fixture)
