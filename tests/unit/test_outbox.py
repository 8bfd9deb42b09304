"""Failover events are never lost: the outbox, independent sinks, honest restarts.

Real processes: ``serve`` in a child process, lab servers and webhook
receivers on loopback, a real script as the failover command.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from monitor.ladder import PoolChange
from monitor.notify import COMMAND, Notifier
from monitor.outbox import Outbox
from monitor.selector import Decision
from tests.support.sites import eventually

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
