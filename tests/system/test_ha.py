"""High availability on a real PostgreSQL: two ``serve`` instances, one leader.

Each case counts the events lost (an event id stored in the database that never
reaches the webhook: must be 0) and the duplicates (an id delivered twice:
allowed, at least once, and said). Durations are the lease's behaviour, with
``SLACK`` on top: nothing here times a step tighter than the lease requires.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.ha.settings import HaSettings
from monitor.ha.store import HaError, Store
from monitor.ha.verdicts import verdict_text
from monitor.lab import LabServer, servers_yaml
from monitor.moodle.database import Password, parse_dsn
from tests.support.alerting import rule_metrics, sample_names
from tests.support.databases import MONITOR_PASSWORD, MONITOR_USER, Database, postgresql
from tests.support.metrics import report
from tests.support.pools import pool_config
from tests.support.sites import eventually, free_port
from tests.support.tcpproxy import TcpProxy
from tests.support.timing import SLACK

LEASE = 3.0


@pytest.fixture
def pg() -> Iterator[Database]:
    with postgresql() as db:
        yield db


def grant(db: Database) -> None:
    db.execute(f"GRANT CREATE ON SCHEMA public TO {MONITOR_USER}")


@dataclass
class Receiver:
    port: int
    events: list[dict[str, Any]]
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.events.append(json.loads(await request.read()))
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
    r = Receiver(free_port(), [])
    await r.start()
    yield r
    await r.stop()


@dataclass
class Instance:
    name: str
    proc: asyncio.subprocess.Process
    base: str
    log: Path


@pytest.fixture
async def instances() -> AsyncIterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for inst in started:
        if inst.proc.returncode is None:
            os.kill(inst.proc.pid, signal.SIGCONT)
            inst.proc.kill()
            await inst.proc.wait()


def ha_config(tmp_path: Path, labs: list[LabServer], name: str, port: int, hook: str) -> Path:
    home = tmp_path / name  # each instance its own history file
    home.mkdir(exist_ok=True)
    text = pool_config(home, labs).read_text()
    text += f"notify:\n  webhooks: [{{url: '{hook}', timeout: 5s}}]\n"
    dsn = f"postgresql://{MONITOR_USER}@127.0.0.1:{port}/moodle"
    text += f"ha:\n  database: {dsn}\n  lease: {LEASE:g}s\n  instance: {name}\n"
    path = home / "servers.yaml"
    path.write_text(text)
    return path


async def start(tmp_path: Path, config: Path, name: str, started: list[Instance]) -> Instance:
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "JITSI_MONITOR_HA_PASSWORD": MONITOR_PASSWORD}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "serve", "--port", "0", str(config),
            stdout=out, stderr=out, env=env,
        )  # fmt: skip
    inst = Instance(name, proc, "", log)
    started.append(inst)

    async def listening() -> str | None:
        found = re.search(r"metrics on (http://[\d.]+:\d+)/metrics", log.read_text())
        assert proc.returncode is None, log.read_text()
        return found.group(1) if found else None

    inst.base = await until(listening, lambda base: base is not None, 30, inst)
    return inst


async def healthz(inst: Instance) -> dict[str, Any] | None:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{inst.base}/healthz") as resp:
            data: dict[str, Any] = await resp.json()
            return data["ha"]  # type: ignore[no-any-return]
    except (aiohttp.ClientError, OSError):
        return None


async def until(get: Any, ok: Any, timeout: float, inst: Instance | None = None) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = await get()
        if ok(value):
            return value
        if loop.time() > end:
            log = inst.log.read_text()[-3000:] if inst is not None else ""
            raise AssertionError(f"not reached within {timeout}s: {value}\n{log}")
        await asyncio.sleep(0.1)


def stored_ids(db: Database) -> dict[str, str | None]:
    """Every event the stored outbox holds now: id -> the server it chose."""
    rows = db.execute("SELECT state FROM jitsi_monitor_ha WHERE id = 1")
    state = rows[0][0] if rows else None
    if not state:
        return {}
    return {e["id"]: e["body"]["chosen"] for e in state["outbox"]["events"]}


def counts(receiver: Receiver, stored: Iterable[str]) -> tuple[int, int]:
    """(events lost, duplicates) among what the receiver got."""
    got = Counter(e["id"] for e in receiver.events)
    return len(set(stored) - set(got)), sum(n - 1 for n in got.values())


async def test_one_leader_and_a_kill_9_hands_over_with_every_pending_event(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    grant(pg)
    a = await start(tmp_path, ha_config(tmp_path, labs, "mon-a", pg.port, receiver.url), "mon-a",
                    instances)  # fmt: skip
    await until(lambda: healthz(a), lambda h: h["role"] == "leader", LEASE + SLACK, a)
    b = await start(tmp_path, ha_config(tmp_path, labs, "mon-b", pg.port, receiver.url), "mon-b",
                    instances)  # fmt: skip
    hb = await until(lambda: healthz(b), lambda h: h["instances"] == 2, LEASE + SLACK, b)
    ha = await healthz(a)
    assert ha is not None
    assert [ha["role"], hb["role"]] == ["leader", "follower"]
    assert hb["leader"] == "mon-a"
    assert hb["epoch"] == ha["epoch"]
    # Every HA metric the shipped alert rules use is exported by both.
    for inst in (a, b):
        async with aiohttp.ClientSession() as s, s.get(f"{inst.base}/metrics") as resp:
            exported = sample_names(await resp.text())
        missing = rule_metrics("jitsi_monitor_ha_") - exported
        assert not missing, f"the alert rules use metrics serve does not export: {sorted(missing)}"
    await eventually(lambda: len(receiver.events) == 1, timeout=SLACK)
    assert receiver.events[0]["reason"] == "initial"

    # A failover whose event cannot be delivered yet: it is pending at the kill.
    await receiver.stop()
    await labs[0].set_fault("refuse")
    await until(
        lambda: asyncio.to_thread(stored_ids, pg), lambda ids: "lab-2" in ids.values(), 20, a
    )
    pending = stored_ids(pg)  # with the initial event too if its delivery was not stored yet
    a.proc.kill()
    await a.proc.wait()

    hb = await until(lambda: healthz(b), lambda h: h["role"] == "leader", LEASE + 2 + SLACK, b)
    assert hb["epoch"] == ha["epoch"] + 1
    await receiver.start()
    await eventually(lambda: set(pending) <= {e["id"] for e in receiver.events}, timeout=SLACK)

    # A failover after the kill: decided by the new leader, it reaches the webhook.
    await labs[1].set_fault("refuse")
    await eventually(lambda: any(e["chosen"] == "lab-3" for e in receiver.events), timeout=20)
    lost, duplicates = counts(receiver, pending)
    assert lost == 0
    print(f"kill -9: events lost {lost}, duplicates {duplicates}")
    # The new leader went on where the old one stopped: one initial choice, ever
    # (delivered twice at most: at least once), and the stored event under its id.
    assert len({e["id"] for e in receiver.events if e["reason"] == "initial"}) == 1
    assert {e["chosen"] for e in receiver.events if e["id"] in pending} <= {"lab-1", "lab-2"}


async def test_a_paused_leader_steps_down_and_its_late_writes_are_refused(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    grant(pg)
    a = await start(tmp_path, ha_config(tmp_path, labs, "mon-a", pg.port, receiver.url), "mon-a",
                    instances)  # fmt: skip
    ha = await until(lambda: healthz(a), lambda h: h["role"] == "leader", LEASE + SLACK, a)
    b = await start(tmp_path, ha_config(tmp_path, labs, "mon-b", pg.port, receiver.url), "mon-b",
                    instances)  # fmt: skip
    await until(lambda: healthz(b), lambda h: h["instances"] == 2, LEASE + SLACK, b)
    await eventually(lambda: len(receiver.events) == 1, timeout=SLACK)

    loop = asyncio.get_running_loop()
    stopped = loop.time()
    os.kill(a.proc.pid, signal.SIGSTOP)
    hb = await until(lambda: healthz(b), lambda h: h["role"] == "leader", LEASE + 2 + SLACK, b)
    await asyncio.sleep(max(0.0, stopped + 2 * LEASE - loop.time()))  # paused twice the lease
    os.kill(a.proc.pid, signal.SIGCONT)
    await until(lambda: healthz(a), lambda h: h["role"] == "follower", LEASE + SLACK, a)
    # The state row is the new epoch's: nothing of the paused leader overwrote it.
    await labs[0].set_fault("refuse")
    await eventually(lambda: any(e["chosen"] == "lab-2" for e in receiver.events), timeout=20)
    (epoch,) = pg.execute("SELECT state_epoch FROM jitsi_monitor_ha WHERE id = 1")[0]
    assert epoch == hb["epoch"] > ha["epoch"]
    assert "steps down" in a.log.read_text()
    assert len({e["id"] for e in receiver.events if e["reason"] == "initial"}) == 1
    _, duplicates = counts(receiver, ())
    print(f"SIGSTOP: duplicates {duplicates}")


async def test_a_leader_cut_from_the_database_steps_down_within_the_lease(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    grant(pg)
    proxy = TcpProxy(pg.port)
    await proxy.start()
    try:
        a = await start(tmp_path, ha_config(tmp_path, labs, "mon-a", proxy.port, receiver.url),
                        "mon-a", instances)  # fmt: skip
        await until(lambda: healthz(a), lambda h: h["role"] == "leader", LEASE + SLACK, a)
        b = await start(tmp_path, ha_config(tmp_path, labs, "mon-b", pg.port, receiver.url),
                        "mon-b", instances)  # fmt: skip
        await until(lambda: healthz(b), lambda h: h["instances"] == 2, LEASE + SLACK, b)
        proxy.partition()
        await until(lambda: healthz(a), lambda h: h["role"] == "follower", LEASE + SLACK, a)
        await until(lambda: healthz(b), lambda h: h["role"] == "leader", LEASE + 2 + SLACK, b)
        ha = await healthz(a)
        assert ha is not None
        assert ha["database"] == "down"
    finally:
        proxy.heal()
        await proxy.stop()


async def test_a_database_the_user_may_not_write_is_a_clear_error_at_start(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    config = ha_config(tmp_path, labs, "mon-a", pg.port, receiver.url)
    env = {**os.environ, "JITSI_MONITOR_HA_PASSWORD": MONITOR_PASSWORD}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "serve", "--port", "0", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    text = err.decode()
    assert "may not create or write the table jitsi_monitor_ha" in text
    assert MONITOR_PASSWORD not in text


def settings(db: Database, name: str) -> HaSettings:
    return HaSettings(parse_dsn(db.dsn), Password(MONITOR_PASSWORD), LEASE, name)


async def test_a_write_from_a_stale_epoch_is_refused_and_names_are_unique(pg: Database) -> None:
    grant(pg)
    a, b = Store(settings(pg, "a")), Store(settings(pg, "b"))
    await a.open()
    await b.open()
    twin = Store(settings(pg, "a"))
    with pytest.raises(HaError, match="another instance named 'a'"):
        await twin.open()
    await twin.close()
    taken = await a.try_lead()
    assert taken is not None
    assert taken[0] == 1
    assert await b.try_lead() is None
    assert await a.write_state(1, json.dumps({"by": "a"}))
    await a.close()  # a's lock goes with its session (its backend exits soon after)
    taken = await until(b.try_lead, lambda t: t is not None, SLACK)
    assert taken == (2, {"by": "a"})
    late = Store(settings(pg, "a2"))
    await late.open()
    assert not await late.write_state(1, json.dumps({"by": "late a"}))  # epoch 1 is stale
    _, epoch, state = await b.read_state()
    assert (epoch, state) == (1, {"by": "a"})
    assert await b.write_state(2, json.dumps({"by": "b"}))
    await late.close()
    await b.close()


async def test_the_database_restarted_under_two_instances_keeps_one_leader_and_every_event(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    grant(pg)
    a = await start(tmp_path, ha_config(tmp_path, labs, "mon-a", pg.port, receiver.url), "mon-a",
                    instances)  # fmt: skip
    ha = await until(lambda: healthz(a), lambda h: h["role"] == "leader", LEASE + SLACK, a)
    b = await start(tmp_path, ha_config(tmp_path, labs, "mon-b", pg.port, receiver.url), "mon-b",
                    instances)  # fmt: skip
    await until(lambda: healthz(b), lambda h: h["instances"] == 2, LEASE + SLACK, b)
    await eventually(lambda: len(receiver.events) == 1, timeout=SLACK)
    await receiver.stop()
    await labs[0].set_fault("refuse")
    await until(
        lambda: asyncio.to_thread(stored_ids, pg), lambda ids: "lab-2" in ids.values(), 20, a
    )
    pending = stored_ids(pg)

    await asyncio.to_thread(pg.restart)

    async def both() -> list[dict[str, Any] | None]:
        return [await healthz(a), await healthz(b)]

    def one_leader_again(hs: list[dict[str, Any] | None]) -> bool:
        return (
            all(h is not None and h["database"] == "up" and h["instances"] == 2 for h in hs)
            and [h["role"] for h in hs if h is not None].count("leader") == 1
            and all(h is not None and h["epoch"] > ha["epoch"] for h in hs)
        )

    await until(both, one_leader_again, 2 * LEASE + SLACK, a)
    await receiver.start()
    await eventually(lambda: set(pending) <= {e["id"] for e in receiver.events}, timeout=SLACK)
    await labs[1].set_fault("refuse")
    await eventually(lambda: any(e["chosen"] == "lab-3" for e in receiver.events), timeout=20)
    lost, duplicates = counts(receiver, pending)
    assert lost == 0
    assert len({e["id"] for e in receiver.events if e["reason"] == "initial"}) == 1
    print(f"database restart: events lost {lost}, duplicates {duplicates}")


async def test_a_burst_of_50_pool_changes_during_a_takeover_reaches_the_webhook(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    grant(pg)
    pools = [f"p{i:02d}" for i in range(1, 51)]

    def config(name: str) -> Path:
        path = ha_config(tmp_path, labs, name, pg.port, receiver.url)
        text = path.read_text()
        head, _, tail = text.partition("pools:\n")
        tail = tail[tail.index("notify:") :]
        members = "    servers: [lab-1, lab-2, lab-3]\n    failover: {after: 2, hold_down: 1h}\n"
        block = "".join(f"  - name: {p}\n{members}" for p in pools)
        path.write_text(f"{head}pools:\n{block}{tail}")
        return path

    a = await start(tmp_path, config("mon-a"), "mon-a", instances)
    await until(lambda: healthz(a), lambda h: h["role"] == "leader", LEASE + SLACK, a)
    b = await start(tmp_path, config("mon-b"), "mon-b", instances)
    await until(lambda: healthz(b), lambda h: h["instances"] == 2, LEASE + SLACK, b)
    await eventually(lambda: len(receiver.events) >= len(pools), timeout=SLACK)

    # 50 pools change at once, and the leader is killed in the middle of it.
    await labs[0].set_fault("refuse")
    await until(
        lambda: asyncio.to_thread(stored_ids, pg), lambda ids: "lab-2" in ids.values(), 20, a
    )
    a.proc.kill()
    await a.proc.wait()
    stored = stored_ids(pg)  # what the killed leader had stored: all must arrive
    await until(lambda: healthz(b), lambda h: h["role"] == "leader", LEASE + 2 + SLACK, b)

    async def choices() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(f"{b.base}/api/v1/pools") as resp:
            return {p["pool"]: p["chosen"] for p in (await resp.json())["pools"]}

    final = await until(choices, lambda c: set(c.values()) == {"lab-2"}, 20, b)

    def last_of_each() -> dict[str, str | None]:
        last: dict[str, str | None] = {}
        for e in receiver.events:
            last[e["pool"]] = e["chosen"]
        return last

    # Every pool's choice now is the last the webhook heard of it.
    await eventually(lambda: last_of_each() == final, timeout=SLACK)
    lost, duplicates = counts(receiver, stored)
    assert lost == 0
    initials = Counter(e["pool"] for e in receiver.events if e["reason"] == "initial")
    by_id = {e["id"]: e["pool"] for e in receiver.events if e["reason"] == "initial"}
    assert initials.keys() == set(pools)
    assert sorted(Counter(by_id.values()).values()) == [1] * len(pools)  # one initial id a pool
    print(f"burst: {len(stored)} stored at the kill, lost {lost}, duplicates {duplicates}")


async def test_a_leader_stopped_with_sigterm_hands_over_its_pending_events(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    grant(pg)
    a = await start(tmp_path, ha_config(tmp_path, labs, "mon-a", pg.port, receiver.url), "mon-a",
                    instances)  # fmt: skip
    ha = await until(lambda: healthz(a), lambda h: h["role"] == "leader", LEASE + SLACK, a)
    b = await start(tmp_path, ha_config(tmp_path, labs, "mon-b", pg.port, receiver.url), "mon-b",
                    instances)  # fmt: skip
    await until(lambda: healthz(b), lambda h: h["instances"] == 2, LEASE + SLACK, b)
    await eventually(lambda: len(receiver.events) == 1, timeout=SLACK)
    await receiver.stop()
    await labs[0].set_fault("refuse")
    await until(
        lambda: asyncio.to_thread(stored_ids, pg), lambda ids: "lab-2" in ids.values(), 20, a
    )
    a.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(a.proc.wait(), 30) == 0
    pending = stored_ids(pg)  # as the leader left it, its last changes stored
    hb = await until(lambda: healthz(b), lambda h: h["role"] == "leader", LEASE + SLACK, b)
    assert hb["epoch"] == ha["epoch"] + 1
    await receiver.start()
    await eventually(lambda: set(pending) <= {e["id"] for e in receiver.events}, timeout=SLACK)
    lost, duplicates = counts(receiver, pending)
    assert lost == 0
    print(f"SIGTERM: events lost {lost}, duplicates {duplicates}")


# -- scale-out ---------------------------------------------------------------------------

SHARDS = 12
# Long enough that "no server misses more than one interval" (a gap under two
# intervals) leaves SLACK over what a takeover needs (a heartbeat to claim, a
# heartbeat's spread to the first probe).
INTERVAL = 12.0


def scale_config(tmp_path: Path, labs: list[LabServer], name: str, port: int, hook: str) -> Path:
    """Twelve servers (the three lab servers four times over) in twelve shards."""
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    text = servers_yaml(labs * 4, interval=f"{INTERVAL:g}s", timeout="2s")
    text += (
        "pools:\n  - name: moodle\n    servers: [lab-1, lab-2, lab-3]\n"
        "    failover: {after: 2, min_improvement: 20% 10ms, hold_down: 1h}\n"
        f"notify:\n  webhooks: [{{url: '{hook}', timeout: 5s}}]\n"
        f"ha:\n  database: postgresql://{MONITOR_USER}@127.0.0.1:{port}/moodle\n"
        f"  lease: {LEASE:g}s\n  instance: {name}\n  shards: {SHARDS}\n"
    )
    path = home / "servers.yaml"
    path.write_text(text)
    return path


def probed_at(db: Database) -> dict[str, float]:
    """When each server's stored verdict was made (the prober's clock: one machine here)."""
    rows = db.execute(
        "SELECT server, (verdict::json->>'finished')::float8 FROM jitsi_monitor_ha_verdicts"
    )
    return {str(server): float(at) for server, at in rows}


async def test_three_instances_share_twelve_shards_and_a_killed_ones_are_taken_over(
    tmp_path: Path, pg: Database, labs: list[LabServer], receiver: Receiver,
    instances: list[Instance],
) -> None:  # fmt: skip
    grant(pg)
    insts = []
    for name in ("mon-a", "mon-b", "mon-c"):
        config = scale_config(tmp_path, labs, name, pg.port, receiver.url)
        insts.append(await start(tmp_path, config, name, instances))

    async def all_healthz() -> list[dict[str, Any] | None]:
        return [await healthz(inst) for inst in insts]

    def shared_fairly(hs: list[dict[str, Any] | None]) -> bool:
        return all(h is not None and len(h["shards"]) == SHARDS // 3 for h in hs)

    hs = await until(all_healthz, shared_fairly, 3 * LEASE + SLACK, insts[0])
    owned = [set(h["shards"]) for h in hs if h is not None]
    assert set().union(*owned) == set(range(SHARDS))
    assert sum(len(o) for o in owned) == SHARDS  # no shard held twice
    # Each server's series come from one instance: summed across them, each counts once.
    up_lines = 0
    for inst in insts:
        async with aiohttp.ClientSession() as s, s.get(f"{inst.base}/metrics") as resp:
            text = await resp.text()
        up_lines += len(re.findall(r"^jitsi_server_info\{", text, re.M))
        assert f'jitsi_monitor_ha_shards{{location="lab"}} {SHARDS}' in text
    assert up_lines == 12

    # The leader decides the pool from the verdicts the others wrote too: the nearest
    # member, and one initial event to the webhook.
    await eventually(lambda: len(receiver.events) == 1, timeout=INTERVAL + SLACK)
    assert receiver.events[0]["reason"] == "initial"
    assert receiver.events[0]["chosen"] == "lab-1"

    # Watch every server's probes from an interval before the kill to two after.
    seen: dict[str, set[float]] = {}

    async def watch(until_t: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < until_t:
            for server, at in (await asyncio.to_thread(probed_at, pg)).items():
                seen.setdefault(server, set()).add(at)
            await asyncio.sleep(0.25)

    loop = asyncio.get_running_loop()
    watching = asyncio.ensure_future(watch(loop.time() + 3 * INTERVAL + 1))
    await asyncio.sleep(INTERVAL + 1)
    leader = next(i for i, h in enumerate(hs) if h is not None and h["role"] == "leader")
    victim = insts[(leader + 1) % 3]  # a follower: its shards, not the lead, move
    victim.proc.kill()
    await victim.proc.wait()
    rest = [inst for inst in insts if inst is not victim]

    async def rest_healthz() -> list[dict[str, Any] | None]:
        return [await healthz(inst) for inst in rest]

    def taken(hs: list[dict[str, Any] | None]) -> bool:
        got = [set(h["shards"]) for h in hs if h is not None]
        return len(got) == 2 and got[0] | got[1] == set(range(SHARDS)) and not got[0] & got[1]

    await until(rest_healthz, taken, LEASE + SLACK, rest[0])
    await watching
    worst = 0.0
    for server in (f"lab-{i}" for i in range(1, 13)):
        times = sorted(seen.get(server, ()))
        assert len(times) >= 3, f"{server} probed {len(times)} times in three intervals"
        gaps = [b - a for a, b in itertools.pairwise(times)]
        worst = max(worst, *gaps)
    print(f"scale-out kill: the longest gap between two probes of a server {worst:.1f}s")
    assert worst < 2 * INTERVAL  # no server missed more than one interval

    # A failover after the kill, judged by the leader from whoever probes the members.
    await labs[0].set_fault("refuse")
    await eventually(
        lambda: any(e["chosen"] == "lab-2" for e in receiver.events), timeout=2 * INTERVAL + SLACK
    )
    assert len({e["id"] for e in receiver.events if e["reason"] == "initial"}) == 1


async def test_shard_locks_are_exclusive_and_fence_the_verdicts(pg: Database) -> None:
    grant(pg)

    def scaled(name: str) -> HaSettings:
        return HaSettings(parse_dsn(pg.dsn), Password(MONITOR_PASSWORD), LEASE, name, SHARDS)

    a, b = Store(scaled("a")), Store(scaled("b"))
    await a.open()
    await b.open()
    try:
        assert await a.claim([0, 1, 2], 2) == [0, 1]  # up to the limit asked
        assert await b.claim([0, 1, 2, 3], 4) == [2, 3]  # not a's
        row = verdict_text(report("lab-1"))
        # b may write verdicts of its shards only: a row of a's shard is refused.
        assert await b.write_verdicts([("x", 2, row, 0.01), ("y", 0, row, 0.01)]) == 1
        assert [r[0] for r in await a.read_verdicts(0)] == ["x"]
        await a.release([1])
        assert await b.claim([1], 1) == [1]
        assert await b.write_verdicts([("z", 1, row, None)]) == 1
        rows = await a.read_verdicts(0)
        assert [r[0] for r in rows] == ["x", "z"]  # in the order written
        assert rows[0][3] < rows[1][3]
        await a.close()  # a's session ends: its shard 0 is free for b
        assert await until(lambda: b.claim([0], 1), lambda got: got == [0], SLACK) == [0]
    finally:
        await a.close()
        await b.close()
