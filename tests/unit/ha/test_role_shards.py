"""Scale-out in the HA role against a stand-in database: shards claimed up to the
fair share and handed over when an instance goes, verdicts written only for the
shards held, and the leader judging pools from the others' verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.ha.role import HaRole
from monitor.ha.settings import HaSettings
from monitor.ha.store import Look, Store
from monitor.moodle.database import parse_dsn
from monitor.selector import Decision, PoolSettings
from monitor.state import State
from tests.support.metrics import report, targets

SERVERS = [f"s{i}" for i in range(24)]


@dataclass
class Db:
    """The leader's lock, the shard locks and the verdicts table, as PostgreSQL keeps them."""

    epoch: int = 0
    holder: str | None = None
    sessions: set[str] = field(default_factory=set)
    shards: dict[int, str] = field(default_factory=dict)
    verdicts: dict[str, tuple[str, Any, int]] = field(default_factory=dict)
    at: int = 0


class FakeStore(Store):
    def __init__(self, settings: HaSettings, db: Db) -> None:
        super().__init__(settings)
        self.db, self.me = db, settings.instance

    async def open(self) -> None:
        self.db.sessions.add(self.me)

    async def close(self) -> None:  # the session ends: every lock it held is free
        db = self.db
        db.sessions.discard(self.me)
        db.holder = None if db.holder == self.me else db.holder
        db.shards = {s: who for s, who in db.shards.items() if who != self.me}

    async def look(self) -> Look:
        db = self.db
        return Look(db.holder == self.me, db.epoch, db.holder or "", 0, len(db.sessions))

    async def try_lead(self) -> tuple[int, dict[str, Any] | None] | None:
        if self.db.holder not in (None, self.me):
            return None
        self.db.holder = self.me
        self.db.epoch += 1
        return self.db.epoch, None

    async def read_state(self) -> tuple[int, int, dict[str, Any] | None]:
        return 0, self.db.epoch, None

    async def write_state(self, epoch: int, data: str) -> bool:
        return epoch == self.db.epoch

    async def claim(self, shards: list[int], limit: int) -> list[int]:
        taken: list[int] = []
        for shard in shards:
            if len(taken) < limit and self.db.shards.setdefault(shard, self.me) == self.me:
                taken.append(shard)
        return taken

    async def release(self, shards: list[int]) -> None:
        for shard in shards:
            if self.db.shards.get(shard) == self.me:
                del self.db.shards[shard]

    async def write_verdicts(self, rows: list[tuple[str, int, str, float | None]]) -> int:
        written = 0
        for server, shard, verdict, score in rows:
            if self.db.shards.get(shard) == self.me:  # the pg_locks check of the statement
                self.db.at += 1
                self.db.verdicts[server] = (verdict, score, self.db.at)
                written += 1
        return written

    async def read_verdicts(self, after: int) -> list[tuple[str, str, Any, int]]:
        rows = [(s, v, score, at) for s, (v, score, at) in self.db.verdicts.items() if at > after]
        return sorted(rows, key=lambda row: row[3])


def role(db: Db, name: str, decided: list[Decision] | None = None) -> HaRole:
    settings = HaSettings(parse_dsn("postgresql://u@127.0.0.1/jm"), None, 3.0, name, shards=6)
    state = State()
    state.set_targets(targets(*SERVERS))
    state.set_pools([PoolSettings("pool", tuple(SERVERS), require=("web",), after=1)])
    made = HaRole(settings, state, make_store=lambda s: FakeStore(s, db))

    def probe_shards() -> None:
        state.probe_only(frozenset(n for n in SERVERS if made.probes(n)))

    def judge(servers: list[str]) -> None:
        for server in servers:
            made_now = state.select(server, 2000.0)
            if decided is not None:
                decided.extend(made_now)

    made.on_shards = probe_shards
    made.on_verdicts = judge
    return made


async def test_three_instances_hold_two_shards_each_and_a_gone_ones_are_taken() -> None:
    db = Db()
    ones = [role(db, name) for name in ("a", "b", "c")]
    for one in ones:
        await one.open()
    for _ in range(3):  # a first claims all; as the others come it lets go of its extra
        for one in ones:
            await one._tick()
    held = [set(one.shards) for one in ones]
    assert [len(h) for h in held] == [2, 2, 2]
    assert set().union(*held) == set(range(6))
    probed = [one.state.probed or frozenset() for one in ones]
    assert sum(len(p) for p in probed) == len(SERVERS)  # each server by one instance
    # c goes (its session ends): at their next heartbeat a and b take its shards.
    await ones[2]._store.close()  # type: ignore[union-attr]
    ones[2]._store = None
    for one in ones[:2]:
        await one._tick()
    assert set(ones[0].shards) | set(ones[1].shards) == set(range(6))
    assert len(ones[0].shards) == len(ones[1].shards) == 3


async def test_verdicts_are_written_for_held_shards_and_the_leader_judges_by_them() -> None:
    db = Db()
    decided: list[Decision] = []
    a, b = role(db, "a", decided), role(db, "b")
    await a.open()
    await b.open()
    for _ in range(2):
        await a._tick()
        await b._tick()
    assert (a.role, b.role) == ("leader", "follower")
    # Each probes its own servers; the verdicts go out at the next heartbeat. The
    # nearest member is one the follower probes.
    near = next(n for n in SERVERS if b.probes(n))
    for one in (a, b):
        for server in SERVERS:
            if one.probes(server):
                one.state.record(report(server, connect=0.001 if server == near else 0.05))
    # From its own half alone the leader makes no first choice: not every member is known.
    assert a.state.pool_states["pool"].current is None
    await b._tick()
    await a._tick()
    assert set(db.verdicts) == set(SERVERS)
    # The leader judged the pool from every member: the nearest, probed by the other.
    assert [(d.reason.value, d.chosen) for d in decided] == [("initial", near)]
    assert a.state.pool_states["pool"].current == near
    # A verdict of a shard b no longer holds is not written.
    db.shards = dict.fromkeys(range(6), "a")
    before = dict(db.verdicts)
    b.state.record(report(next(n for n in SERVERS if b.probes(n))))
    await b._write_verdicts(b._store)  # type: ignore[arg-type]
    assert db.verdicts == before
