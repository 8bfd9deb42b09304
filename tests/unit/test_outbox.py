"""Failover events are never lost: the outbox, independent sinks, honest restarts.

Real processes: ``serve`` in a child process, lab servers and webhook
receivers on loopback, a real script as the failover command.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from monitor.lab import LabServer
from monitor.ladder import PoolChange
from monitor.notify import COMMAND, Notifier
from monitor.outbox import Outbox
from monitor.selector import Decision
from tests.conftest import Served, eventually, free_port, start_serve
from tests.test_pools import labs, pool_config, wait_for_choice

__all__ = ["labs"]  # the fixture, imported for these tests


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


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    await r.start()
    yield r
    await r.stop()


def with_notify(config: Path, hooks: list[str], command: list[str] | None = None) -> Path:
    text = config.read_text() + "notify:\n"
    text += "  webhooks: [" + ", ".join(f"{{url: '{h}', timeout: 30s}}" for h in hooks) + "]\n"
    if command:
        text += f"  command: {json.dumps(command)}\n"
    config.write_text(text)
    return config


def saved_outbox(tmp_path: Path) -> dict[str, object]:
    data = json.loads((tmp_path / "jitsi-monitor-state.json").read_text())
    outbox = data["outbox"]
    assert isinstance(outbox, dict)
    return outbox


async def stop(served: Served) -> None:
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.proc.wait(), 15) == 0


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
    assert ran_at - at < 1.0, "the command waited behind the webhook"
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


async def get_text(url: str) -> tuple[int, str]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


# -- the command hook, in process ---------------------------------------------


def decision(pool: str = "p", chosen: str = "b") -> Decision:
    return Decision(pool, "a", chosen, PoolChange.INELIGIBLE, "a: web: timeout", time.time())


async def run_command(command: list[str], timeout: float, events: int = 1) -> Notifier:
    outbox = Outbox()
    notifier = Notifier(outbox, user_agent="test", command_timeout=timeout)
    notifier.configure([], command)
    for i in range(events):
        d = decision(pool=f"p{i}")
        notifier.submit(d, {"pool": d.pool, "chosen": d.chosen})
    try:
        await eventually(lambda: not outbox.queues[COMMAND].pending, timeout=timeout + 10)
    finally:
        await notifier.close()
    return notifier


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


def running(marker: str) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                return True
    return False


async def test_a_command_that_leaves_a_child_behind_ends_cleanly() -> None:
    notifier = await run_command(["/bin/sh", "-c", "sleep 30.4242 & exit 0"], timeout=1.0)
    assert notifier.exits == {"0": 1}
    assert notifier.outbox.results[COMMAND, "delivered"] == 1


async def test_a_command_past_its_timeout_is_killed_with_its_children() -> None:
    outbox = Outbox()
    notifier = Notifier(outbox, user_agent="test", command_timeout=0.5)
    notifier.configure([], ["/bin/sh", "-c", "sleep 31.4242; true"])
    d = decision()
    notifier.submit(d, {"pool": d.pool})
    try:
        await eventually(lambda: notifier.exits["timeout"] >= 1, timeout=10)
        await eventually(lambda: not running("sleep 31.4242"), timeout=5)
        # The worker lives on: a working command takes the event at its next try.
        notifier.configure([], ["/bin/true"])
        await eventually(lambda: not outbox.queues[COMMAND].pending, timeout=15)
    finally:
        await notifier.close()
    assert outbox.results[COMMAND, "delivered"] == 1
    assert outbox.results[COMMAND, "failed"] >= 1


async def test_a_command_that_floods_its_output_keeps_memory_bounded() -> None:
    before = rss_mib()
    flood = "head -c 300000000 /dev/zero; echo done"
    notifier = await run_command(["/bin/sh", "-c", flood], timeout=60.0)
    assert notifier.exits == {"0": 1}
    assert rss_mib() - before < 100


async def test_a_command_that_cannot_start_does_not_end_the_worker(tmp_path: Path) -> None:
    outbox = Outbox()
    notifier = Notifier(outbox, user_agent="test", command_timeout=5)
    notifier.configure([], [str(tmp_path / "missing.sh")])
    d = decision()
    notifier.submit(d, {"pool": d.pool})
    try:
        await eventually(lambda: notifier.exits["cannot_start"] >= 1, timeout=5)
        notifier.configure([], [sys.executable, "-c", "pass"])
        await eventually(lambda: not outbox.queues[COMMAND].pending, timeout=15)
    finally:
        await notifier.close()


async def test_the_command_skips_an_event_a_newer_one_of_its_pool_superseded(
    tmp_path: Path,
) -> None:
    log = tmp_path / "ran.log"
    outbox = Outbox()
    notifier = Notifier(outbox, user_agent="test", command_timeout=5)
    notifier.configure([], ["/bin/sh", "-c", f'echo "$JITSI_MONITOR_CHOSEN" >> {log}'])
    for chosen in ("b", "c"):  # both before the worker runs: b is superseded
        d = decision(chosen=chosen)
        notifier.submit(d, {"pool": d.pool, "chosen": chosen})
    try:
        await eventually(lambda: not outbox.queues[COMMAND].pending, timeout=10)
    finally:
        await notifier.close()
    assert log.read_text().split() == ["c"]
    assert outbox.results[COMMAND, "superseded"] == 1


# -- the outbox's bookkeeping -------------------------------------------------


def test_a_failing_sink_drops_its_oldest_events_past_its_bounds() -> None:
    outbox = Outbox(max_age=3600, max_pending=3)
    outbox.set_sinks({"webhook:x": "webhook x", COMMAND: COMMAND})
    ids = [outbox.add("p", 1000.0 + i, {"n": i}).id for i in range(5)]
    assert list(outbox.queues["webhook:x"].pending) == ids[2:]
    assert outbox.results["webhook x", "dropped"] == 2
    # Failing for longer than max_age: events older than max_age go.
    outbox.failed("webhook:x", 1000.0)
    dropped = outbox.failed("webhook:x", 1000.0 + 3600 + 2.5)
    assert [e.id for e in dropped] == [ids[2]]
    # The command took everything: only what the webhook waits for is kept.
    for event_id in ids[2:]:
        outbox.finish(COMMAND, outbox.events[event_id], "delivered")
    assert set(outbox.events) == set(outbox.queues["webhook:x"].pending)


def test_the_outbox_survives_a_round_trip_and_refuses_what_is_malformed() -> None:
    outbox = Outbox()
    outbox.set_sinks({"webhook:x": "webhook x", COMMAND: COMMAND})
    first = outbox.add("p", 1000.0, {"chosen": "b"})
    outbox.finish(COMMAND, first, "delivered")
    second = outbox.add("p", 1001.0, {"chosen": "c"})
    saved = json.loads(json.dumps(outbox.dump()))

    again = Outbox()
    again.set_sinks({"webhook:x": "webhook x", COMMAND: COMMAND})
    assert again.restore(saved) is None
    assert list(again.queues["webhook:x"].pending) == [first.id, second.id]
    assert list(again.queues[COMMAND].pending) == [second.id]
    assert again.events[first.id].body == {"chosen": "b", "id": first.id}

    hostile = {
        "events": [{"id": "x" * 1000, "pool": "p", "at": 1.0, "body": {}}, 5, {"id": "y"}],
        "queues": {"webhook:x": {"pending": ["x" * 1000, "y", 7]}, "gone": {"pending": []}},
    }
    third = Outbox()
    third.set_sinks({"webhook:x": "webhook x"})
    assert (
        third.restore(hostile) == "the saved outbox names 1 sink(s) no longer configured; skipped"
    )
    assert not third.events
    assert third.restore([1, 2]) == "the saved outbox is not a mapping; it is ignored"


async def test_a_sink_worker_outlives_an_error_of_its_own() -> None:
    """An error in the worker's own bookkeeping (here: saving) is logged and the
    worker goes on; the event is taken at the next try."""
    outbox = Outbox()
    saves: list[int] = []

    def save() -> None:
        saves.append(1)
        if len(saves) == 1:
            raise RuntimeError("disk on fire")

    notifier = Notifier(outbox, user_agent="test", command_timeout=5, save=save)
    notifier.configure([], ["/bin/true"])
    d = decision()
    notifier.submit(d, {"pool": d.pool})
    try:
        await eventually(lambda: outbox.results[COMMAND, "delivered"] == 1, timeout=10)
        # The same worker takes the next event.
        notifier.submit(d, {"pool": d.pool})
        await eventually(lambda: outbox.results[COMMAND, "delivered"] == 2, timeout=10)
    finally:
        await notifier.close()
    assert len(saves) == 2


def test_a_changed_webhook_url_counts_its_queue_as_dropped() -> None:
    outbox = Outbox()
    outbox.set_sinks({"webhook:old": "webhook old"})
    outbox.add("p", 1000.0, {})
    outbox.set_sinks({"webhook:new": "webhook new"})
    assert outbox.results["webhook old", "dropped"] == 1
    assert not outbox.events
