"""Failover events are never lost, through restarts of a real ``serve``:
an event whose webhook is down at shutdown is delivered after a restart, the
command runs while a webhook never answers, and a restart with the saved
choice down sends no spurious event."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from monitor.lab import LabServer
from tests.support.pools import pool_config, wait_for_choice
from tests.support.processes import Served, start_serve
from tests.support.sites import eventually, free_port
from tests.support.timing import SLACK


async def test_an_event_whose_webhook_is_down_at_shutdown_is_delivered_after_a_restart(
    tmp_path: Path, labs: list[LabServer], serve: list[Served], receiver: Receiver
) -> None:
    config = with_notify(pool_config(tmp_path, labs), [receiver.url])
    served = await start_serve(config, serve)
    await wait_for_choice(served.base, "lab-1")
    await eventually(lambda: len(receiver.events) == 1, timeout=10)  # the initial choice

    await receiver.stop()
    await labs[0].set_fault("refuse")
    await wait_for_choice(served.base, "lab-2")
    await asyncio.sleep(1.5)
    await stop(served)
    outbox = saved_outbox(tmp_path)
    (event,) = outbox["events"]  # type: ignore[misc]
    assert event["body"]["chosen"] == "lab-2"
    saved_id = event["id"]

    await receiver.start()
    served = await start_serve(config, serve)
    await eventually(lambda: len(receiver.events) == 2, timeout=15)
    body, header_id = receiver.events[1]
    assert (body["id"], header_id, body["chosen"]) == (saved_id, saved_id, "lab-2")
    assert body["reason"] == "ineligible"
    await asyncio.sleep(2)  # several rounds: it is not delivered again
    assert [b["id"] for b, _ in receiver.events].count(saved_id) == 1
    await stop(served)
    assert saved_outbox(tmp_path)["events"] == []


async def test_the_command_runs_at_once_while_a_webhook_never_answers(
    tmp_path: Path, labs: list[LabServer], serve: list[Served], receiver: Receiver
) -> None:
    receiver.hang = True
    log = tmp_path / "command.log"
    script = tmp_path / "switch.sh"
    script.write_text(
        f'#!/bin/sh\nprintf "%s %s\\n" "$(date +%s.%N)" "$JITSI_MONITOR_EVENT" >> "{log}"\n'
    )
    script.chmod(0o755)
    config = with_notify(pool_config(tmp_path, labs), [receiver.url], [str(script)])
    served = await start_serve(config, serve)
    await wait_for_choice(served.base, "lab-1")
    await labs[0].set_fault("refuse")
    await wait_for_choice(served.base, "lab-2")

    def runs() -> list[tuple[float, dict[str, object]]]:
        if not log.exists():
            return []
        lines = log.read_text().splitlines()
        return [(float(t), json.loads(e)) for t, e in (line.split(" ", 1) for line in lines)]

    await eventually(lambda: any(e["chosen"] == "lab-2" for _, e in runs()), timeout=10)
    ran_at, event = next((t, e) for t, e in runs() if e["chosen"] == "lab-2")
    at = event["at"]
    assert isinstance(at, float)
    # the webhook's timeout is 30 s: a command behind it would run no sooner
    assert ran_at - at < 30 - SLACK, "the command waited behind the webhook"
    # The webhook still has both events pending: its outbox queue says so.
    _, metrics = await get_text(f"{served.base}/metrics")
    pending = re.search(
        r'jitsi_monitor_outbox_pending_events\{[^}]*sink="webhook[^"]*"\} (\S+)', metrics
    )
    assert pending is not None
    assert float(pending.group(1)) == 2.0


async def test_a_restart_with_the_saved_choice_down_sends_no_none_eligible(
    tmp_path: Path, labs: list[LabServer], serve: list[Served], receiver: Receiver
) -> None:
    config = with_notify(pool_config(tmp_path, labs), [receiver.url])
    served = await start_serve(config, serve)
    await wait_for_choice(served.base, "lab-1")
    await stop(served)
    await labs[0].set_fault("refuse")
    before = len(receiver.events)

    served = await start_serve(config, serve)
    pool = await wait_for_choice(served.base, "lab-2")
    await asyncio.sleep(1)
    after = [body for body, _ in receiver.events[before:]]
    assert [(e["event"], e["reason"], e["chosen"]) for e in after] == [
        ("failover", "ineligible", "lab-2")
    ]
    assert after[0]["detail"] == "lab-1: web: connect_refused"
    assert pool["failovers"] == {"ineligible": 1}


@dataclass
class Receiver:
    """A webhook receiver on a fixed port that can go down and come back."""

    port: int
    hang: bool = False
    events: list[tuple[dict[str, object], str]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            body = json.loads(await request.read())
            if self.hang:
                await asyncio.sleep(3600)
            self.events.append((body, request.headers["X-Jitsi-Monitor-Event-Id"]))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def get_text(url: str) -> tuple[int, str]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    await r.start()
    yield r
    await r.stop()


def saved_outbox(tmp_path: Path) -> dict[str, object]:
    data = json.loads((tmp_path / "jitsi-monitor-state.json").read_text())
    outbox = data["outbox"]
    assert isinstance(outbox, dict)
    return outbox


async def stop(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.proc.wait(), 15) == 0


def with_notify(config: Path, hooks: list[str], command: list[str] | None = None) -> Path:
    text = config.read_text() + "notify:\n"
    text += "  webhooks: [" + ", ".join(f"{{url: '{h}', timeout: 30s}}" for h in hooks) + "]\n"
    if command:
        text += f"  command: {json.dumps(command)}\n"
    config.write_text(text)
    return config
