"""The media path against real servers: Debian's Prosody announcing Debian's coturn.

Prosody 0.12's own ``mod_turn_external`` (with ``mod_external_services``)
announces a coturn that the tests start on loopback (tests/coturn.py):
STUN and TURN over UDP and TCP, TURN over TLS. Each case is what a user
reads in the report: STUN round trips and TURN allocations per transport
when all is well, and, within one round, ``turn_refused`` when coturn is
stopped, ``turn_unauthorized`` when its secret no longer matches
Prosody's, and so on.
"""

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
