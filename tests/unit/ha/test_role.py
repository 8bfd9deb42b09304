"""The HA role against a stand-in database: who leads, what a follower shows,
when a sink may deliver, a stale leader's write, the leader's own deadline."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from monitor.ha.decisions import HaDecisions
from monitor.ha.role import HaRole
from monitor.ha.settings import HaSettings
from monitor.ha.store import Look, Store
from monitor.moodle.database import parse_dsn
from monitor.selector import PoolSettings
from monitor.state import State
from tests.support.metrics import report, targets


@dataclass
class Db:
    """One shared row and the leader's lock, as PostgreSQL keeps them."""

    epoch: int = 0
    leader: str = ""
    seq: int = 0
    state: dict[str, Any] | None = None
    holder: str | None = None
    sessions: set[str] = field(default_factory=set)


class FakeStore(Store):
    def __init__(self, settings: HaSettings, db: Db) -> None:
        super().__init__(settings)
        self.db = db
        self.me = settings.instance

    async def open(self) -> None:
        self.db.sessions.add(self.me)

    async def close(self) -> None:
        self.db.sessions.discard(self.me)
        if self.db.holder == self.me:
            self.db.holder = None

    async def look(self) -> Look:
        db = self.db
        return Look(db.holder == self.me, db.epoch, db.leader, db.seq, len(db.sessions))

    async def try_lead(self) -> tuple[int, dict[str, Any] | None] | None:
        if self.db.holder not in (None, self.me):
            return None
        self.db.holder, self.db.leader = self.me, self.me
        self.db.epoch += 1
        return self.db.epoch, self.db.state

    async def read_state(self) -> tuple[int, int, dict[str, Any] | None]:
        return self.db.seq, self.db.epoch, self.db.state

    async def write_state(self, epoch: int, data: str) -> bool:
        if epoch != self.db.epoch:
            return False
        self.db.state, self.db.seq = json.loads(data), self.db.seq + 1
        return True


def role(db: Db, name: str) -> HaRole:
    settings = HaSettings(parse_dsn("postgresql://u@127.0.0.1/jm"), None, 3.0, name)
    state = State()
    state.set_targets(targets("s1", "s2"))
    state.set_pools([PoolSettings("pool", ("s1", "s2"), require=("web",), after=1)])
    return HaRole(settings, state, make_store=lambda s: FakeStore(s, db))


async def test_one_leads_and_the_follower_shows_its_choice_not_its_own() -> None:
    db = Db()
    a, b = role(db, "a"), role(db, "b")
    await a.open()
    await b.open()
    await a._tick()
    await b._tick()
    assert (a.role, b.role, a.epoch, b.epoch, b.leader) == ("leader", "follower", 1, 1, "a")
    taken = HaDecisions(a, a.state, notify=lambda d: None, save=a.changed)
    taken.take(a.state.record(report("s1")))
    taken.take(a.state.record(report("s2", connect=0.05)))
    assert a.state.pool_states["pool"].current == "s1"
    await a._store_once()
    # The follower judges s2 better on its own (s1 down there): its judgement is dropped.
    await b._tick()
    dropped = HaDecisions(b, b.state)
    dropped.take(b.state.record(report("s1", up=False)))
    dropped.take(b.state.record(report("s2")))
    assert b.state.pool_states["pool"].current == "s1"
    assert [d.chosen for d in b.state.decisions] == ["s1"]  # the leader's, as stored


async def test_a_sink_waits_until_the_event_is_stored_and_a_follower_never_delivers() -> None:
    db = Db()
    a, b = role(db, "a"), role(db, "b")
    await a.open()
    await b.open()
    await a._tick()
    await b._tick()
    await a._store_once()
    a.changed()  # an event was added: not stored yet
    waiting = asyncio.ensure_future(a.ready())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await a._store_once()
    assert await asyncio.wait_for(waiting, 1) is True
    assert await b.ready() is False


async def test_a_stale_leaders_write_is_refused_and_it_steps_down() -> None:
    db = Db()
    a, b = role(db, "a"), role(db, "b")
    await a.open()
    await b.open()
    await a._tick()
    a.state.outbox.set_sinks({"hook": "hook"})
    a.state.outbox.add("pool", 1.0, {"chosen": "s1"})
    await a._store_once()
    stored = db.state
    # a is paused; the server ended its session; b takes the lead (epoch 2).
    db.holder = None
    await b._tick()
    assert (b.role, db.epoch) == ("leader", 2)
    a.state.outbox.add("pool", 2.0, {"chosen": "s2"})
    a.changed()
    await a._store_once()
    assert (a.role, a.refused_writes) == ("follower", 1)
    assert db.state == stored  # nothing of a's late write
    assert not a.state.outbox.events  # the next leader delivers from the stored outbox


async def test_a_leader_stops_acting_at_its_deadline_by_its_own_clock() -> None:
    db = Db()
    a = role(db, "a")
    await a.open()
    await a._tick()
    assert a.acting()
    a._confirmed -= a.settings.deadline  # no heartbeat confirmed for half a lease
    assert not a.acting()
    taken = HaDecisions(a, a.state, notify=lambda d: None)
    taken.take(a.state.record(report("s1")))
    taken.take(a.state.record(report("s2", connect=0.05)))
    assert not a.state.decisions  # it decides nothing while it cannot act
    await a._tick()
    assert a.role == "leader"  # confirmed again: it acts again (same epoch, nobody took over)
    assert a.acting()
