"""The site pool follows mod_jitsi/server (monitor/moodle/follow.py), and the switch sink
takes the pool's events by its policy (monitor/moodle/sink.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.moodle import sink as sink_module
from monitor.moodle.follow import follow
from monitor.moodle.sink import SINK, MoodleSwitch
from monitor.moodle.status import MoodleStatus
from monitor.moodle.switch import SwitchCommand, SwitchOutcome
from monitor.outbox import Outbox
from monitor.selector import PoolSettings, PoolState

POOL = PoolSettings("moodle", ("a-1", "b-2", "c-3"), hold_down=600.0)
ROWS = {"a-1": 1, "b-2": 2, "c-3": 3}


def test_follow_takes_moodles_choice_and_holds_off_better_switches() -> None:
    states = {"moodle": PoolState(current="a-1", streak=2, challenger="b-2")}
    assert follow({"moodle": POOL}, states, "moodle", "c-3", 1000.0, at_start=False)
    state = states["moodle"]
    assert (state.current, state.challenger, state.streak) == ("c-3", None, 0)
    assert state.hold_until == 1600.0
    # The same again, a server not in the pool, or no server: nothing changes.
    assert not follow({"moodle": POOL}, states, "moodle", "c-3", 1001.0, at_start=False)
    assert not follow({"moodle": POOL}, states, "moodle", "zz-9", 1001.0, at_start=False)
    assert not follow({"moodle": POOL}, states, "moodle", None, 1001.0, at_start=False)
    assert states["moodle"].current == "c-3"


def test_follow_at_start_is_not_a_change_from_outside() -> None:
    states: dict[str, PoolState] = {}
    assert not follow({"moodle": POOL}, states, "moodle", "b-2", 5.0, at_start=True)
    assert states["moodle"].current == "b-2"


Switched = list[int]


@pytest.fixture
def switched(monkeypatch: pytest.MonkeyPatch) -> Switched:
    calls: Switched = []

    async def fake(
        command: SwitchCommand, server_id: int, read_back: Callable[[], Awaitable[int | None]]
    ) -> SwitchOutcome:
        calls.append(server_id)
        if server_id == 3:
            return SwitchOutcome("forced", 3, "hard-set in config.php (cfg.php exit 4)", 4)
        return SwitchOutcome("done", server_id, f"mod_jitsi/server is {server_id}", 0)

    monkeypatch.setattr(sink_module, "switch_server", fake)
    return calls


def _sink(policy: str, active: int = 1) -> tuple[MoodleSwitch, Outbox]:
    outbox = Outbox()
    outbox.set_sinks({SINK: "moodle"})
    status = MoodleStatus("postgresql://mon@db:5432/moodle", "moodle", policy, active_id=active)

    async def never() -> int | None:
        raise AssertionError("the fake switch reads nothing back")

    switch = MoodleSwitch(
        SwitchCommand(Path("/usr/bin/php"), Path("/var/www/moodle")),
        status,
        outbox,
        row_of=lambda name: ROWS.get(name or ""),
        read_back=never,
    )
    return switch, outbox


def _event(outbox: Outbox, chosen: str | None, reason: str, pool: str = "moodle") -> Any:
    return outbox.add(pool, 1.0, {"chosen": chosen, "reason": reason})


async def test_when_down_switches_for_an_ineligible_server_only(switched: Switched) -> None:
    switch, outbox = _sink("when_down")
    assert await switch.deliver(_event(outbox, "b-2", "better")) == "delivered"
    outbox.finish(SINK, outbox.head(SINK), "delivered")  # type: ignore[arg-type]
    assert switched == []
    assert switch.status.switches["skipped"] == 1
    assert await switch.deliver(_event(outbox, "b-2", "ineligible")) == "delivered"
    assert switched == [2]
    assert switch.status.active_id == 2
    assert switch.status.last_switch is not None
    assert switch.status.last_switch["result"] == "done"


async def test_better_switches_for_a_nearer_server(switched: Switched) -> None:
    switch, outbox = _sink("better")
    assert await switch.deliver(_event(outbox, "b-2", "better")) == "delivered"
    assert switched == [2]


async def test_what_moodle_uses_already_is_not_set_again(switched: Switched) -> None:
    switch, outbox = _sink("when_down", active=2)
    assert await switch.deliver(_event(outbox, "b-2", "ineligible")) == "delivered"
    assert switched == []
    assert switch.status.switches["unchanged"] == 1


async def test_forced_is_refused_for_good_and_counted(switched: Switched) -> None:
    switch, outbox = _sink("when_down")
    assert await switch.deliver(_event(outbox, "c-3", "ineligible")) == "refused"
    outbox.finish(SINK, outbox.head(SINK), "refused")  # type: ignore[arg-type]
    assert switch.status.switches["forced"] == 1
    assert switch.status.active_id == 1
    # While Moodle keeps row 1, reading it is the refused switch, not a change from outside.
    assert switch.busy()
    switch.status.active_id = 2  # someone set another row by hand
    assert not switch.busy()


async def test_an_older_event_is_superseded_and_other_pools_are_not_moodles(
    switched: Switched,
) -> None:
    switch, outbox = _sink("when_down")
    old = _event(outbox, "b-2", "ineligible")
    _event(outbox, "c-3", "ineligible")
    assert switch.busy()
    assert await switch.deliver(old) == "superseded"
    assert await switch.deliver(_event(outbox, "b-2", "ineligible", pool="other")) == "delivered"
    assert switched == []
