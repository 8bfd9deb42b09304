"""Benchmark: HA takeovers on a real PostgreSQL (not a timed test).

Run on its own: ``python -m bench.ha [--kills N] [--lease S] [--quiet S]``. It
starts PostgreSQL in a temporary directory (tests/support/databases.py), three
lab servers in one pool, a webhook receiver, and two ``serve`` with an ``ha``
block. Each round makes a pool change (the chosen server refuses), waits until
the event is stored, kills the leader with SIGKILL at once (its delivery may or
may not have happened), and times until the other instance's ``/healthz`` says
``leader`` (polled every 20 ms); the killed one comes back as a follower. At the
end: takeover p50 and max, events lost (an id the database ever stored that the
receiver never got: must be 0), duplicates (ids received twice: at least once).

Then the cost, over a quiet window: database transactions per minute of two
instances (``pg_stat_database.xact_commit``; one heartbeat statement is one
transaction), and the CPU of the leader against a ``serve`` without ``ha``.

The transactions do not grow with the fleet (one row; a heartbeat per
instance, a write per change); one write does. ``--sizes 1000,10000`` times,
for a state of that many servers (in pools of ten, a smoothed round trip
each, 100 pending events): the state document's bytes, the CPU to build it,
and a fenced write and a follower's read of it on the same PostgreSQL.

Scale-out (``ha.shards``): ``--scale K`` starts three instances on twelve
shards over twelve servers (the lab servers four times over, 5 s interval)
and kills one of them K times (it comes back each time): how long until the
other two hold every shard (p50, max), and the longest gap between two probes
of any server across the kills (from the verdicts table; the interval is
the floor). ``--verdicts 1000,10000`` counts the database round trips per
minute of three instances with a 15 s lease and 60 s intervals at each fleet
size: it runs the statements of one heartbeat of each instance (the
heartbeat, a batch of the verdicts due, the leader's read of the others')
against the real PostgreSQL, counts them in ``pg_stat_database`` and times
them, and scales to a minute of heartbeats (the leader's state writes, a
few a minute when quiet, come on top: the kill rounds above count those).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import ROOT, ms, proc_cpu_seconds, summary

sys.path.insert(0, str(ROOT))

from monitor.ha.settings import HaSettings
from monitor.ha.shards import shard_of
from monitor.ha.store import Store
from monitor.ha.verdicts import verdict_text
from monitor.lab import LabOptions, LabServer, servers_yaml
from monitor.moodle.database import Password, parse_dsn
from monitor.selector import PoolSettings
from monitor.state import State, state_data
from tests.support.databases import MONITOR_PASSWORD, MONITOR_USER, Database, postgresql
from tests.support.metrics import report, targets


class Receiver:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.ids.append(json.loads(await request.read())["id"])
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class Serve:
    def __init__(self, home: Path, config: Path, name: str) -> None:
        self.home, self.config, self.name = home, config, name
        self.proc: asyncio.subprocess.Process | None = None
        self.base = ""

    async def start(self) -> None:
        log = self.home / f"{self.name}.log"
        env = {**os.environ, "JITSI_MONITOR_HA_PASSWORD": MONITOR_PASSWORD}
        with log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor", "serve", "--port", "0", str(self.config),
                stdout=out, stderr=out, env=env, cwd=ROOT,
            )  # fmt: skip
        start = log.stat().st_size if log.exists() else 0
        for _ in range(600):
            text = log.read_text()[start:] if log.exists() else ""
            found = re.search(r"metrics on (http://[\d.]+:\d+)/metrics", text)
            if found:  # this start's line, not the one of before a kill
                self.base = found.group(1)
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start: {log.read_text()[-2000:]}")

    async def role(self, session: aiohttp.ClientSession) -> str | None:
        try:
            async with session.get(f"{self.base}/healthz") as resp:
                data: dict[str, Any] = await resp.json()
                return data.get("ha", {}).get("role")  # type: ignore[no-any-return]
        except (aiohttp.ClientError, OSError):
            return None

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()


def write_config(home: Path, labs: list[LabServer], port: int, hook: str, ha: bool) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    text = servers_yaml(labs, interval="1s", timeout="1s")
    text += "pools:\n  - name: moodle\n    servers: [lab-1, lab-2, lab-3]\n"
    text += "    failover: {after: 2, min_improvement: 20% 10ms, hold_down: 1h}\n"
    text += f"notify:\n  webhooks: [{{url: '{hook}', timeout: 5s}}]\n"
    if ha:
        dsn = f"postgresql://{MONITOR_USER}@127.0.0.1:{port}/moodle"
        text += f"ha:\n  database: {dsn}\n  lease: {LEASE:g}s\n  instance: {home.name}\n"
    path = home / "servers.yaml"
    path.write_text(text)
    return path


def stored(db: Database) -> dict[str, str | None]:
    rows = db.execute("SELECT state FROM jitsi_monitor_ha WHERE id = 1")
    state = rows[0][0] if rows else None
    return {e["id"]: e["body"]["chosen"] for e in state["outbox"]["events"]} if state else {}


LEASE = 3.0


async def until(check: Any, within: float) -> None:
    end = time.monotonic() + within
    while not await check():
        if time.monotonic() > end:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.02)


async def run(kills: int, quiet: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with postgresql() as db, tempfile.TemporaryDirectory(prefix="bench-ha-") as folder:
        db.execute(f"GRANT CREATE ON SCHEMA public TO {MONITOR_USER}")
        labs = [LabServer(LabOptions(latency=0.02 * i)) for i in range(3)]
        for lab in labs:
            await lab.start()
        receiver = Receiver()
        await receiver.start()
        hook = f"http://127.0.0.1:{receiver.port}/hook"
        where = Path(folder)
        a = Serve(where / "mon-a", write_config(where / "mon-a", labs, db.port, hook, True), "a")
        b = Serve(where / "mon-b", write_config(where / "mon-b", labs, db.port, hook, True), "b")
        seen: dict[str, str | None] = {}
        takeovers: list[float] = []
        async with aiohttp.ClientSession() as session:
            await a.start()
            await until(lambda: _is(a, session, "leader"), 30)
            await b.start()
            leader, follower = a, b
            chosen = 0  # lab-1 is chosen first
            for _ in range(kills):
                try:
                    await until(lambda f=follower: _is(f, session, "follower"), 30)
                except RuntimeError:
                    for one in (a, b):
                        print(one.name, one.base, await one.role(session))
                    raise
                await asyncio.sleep(LEASE / 5 * 2)  # the follower has seen the leader
                # A pool change: the chosen server refuses, the last one comes back.
                nxt = (chosen + 1) % 3
                await labs[chosen].set_fault("refuse")
                await labs[nxt].set_fault("none")
                want = f"lab-{nxt + 1}"

                async def stored_change(want: str = want) -> bool:
                    now = await asyncio.to_thread(stored, db)
                    seen.update(now)
                    return want in now.values()

                await until(stored_change, 30)
                t0 = time.monotonic()
                await leader.kill()
                await until(lambda f=follower: _is(f, session, "leader"), 60)
                takeovers.append(time.monotonic() - t0)
                await leader.start()  # back as a follower
                leader, follower = follower, leader
                chosen = nxt
            await asyncio.sleep(LEASE)
            seen.update(await asyncio.to_thread(stored, db))

            async def delivered() -> bool:
                return not set(seen) - set(receiver.ids)

            with contextlib.suppress(RuntimeError):  # what is missing then is counted as lost
                await until(delivered, 30)
            lost = len(set(seen) - set(receiver.ids))
            duplicates = sum(n - 1 for n in Counter(receiver.ids).values())
            figures["takeover"] = summary(takeovers)
            figures["events"] = {"stored": len(seen), "lost": lost, "duplicates": duplicates}
            # The cost over a quiet window: transactions of the two instances, the leader's CPU.
            await asyncio.sleep(LEASE)
            x0 = _commits(db)
            assert leader.proc is not None
            c0 = proc_cpu_seconds(leader.proc.pid)
            await asyncio.sleep(quiet)
            per_minute = (_commits(db) - x0) / quiet * 60
            figures["db transactions per minute (2 instances)"] = per_minute
            figures["leader cpu seconds per minute"] = (
                (proc_cpu_seconds(leader.proc.pid) - c0) / quiet * 60
            )
            await leader.kill()
            await follower.kill()
            single = Serve(
                where / "single", write_config(where / "single", labs, 0, hook, False), "s"
            )
            await single.start()
            await asyncio.sleep(LEASE)
            assert single.proc is not None
            c0 = proc_cpu_seconds(single.proc.pid)
            await asyncio.sleep(quiet)
            figures["single process cpu seconds per minute"] = (
                (proc_cpu_seconds(single.proc.pid) - c0) / quiet * 60
            )
            await single.kill()
        for lab in labs:
            await lab.stop()
    return figures


async def store_cost(sizes: list[int], rounds: int = 10) -> dict[str, dict[str, float]]:
    """One store's cost at each fleet size: bytes, CPU to build, write and read times."""
    out: dict[str, dict[str, float]] = {}
    with postgresql() as db:
        db.execute(f"GRANT CREATE ON SCHEMA public TO {MONITOR_USER}")
        settings = HaSettings(parse_dsn(db.dsn), Password(MONITOR_PASSWORD), 15.0, "bench")
        store = Store(settings)
        await store.open()
        taken = await store.try_lead()
        assert taken is not None
        epoch = taken[0]
        for size in sizes:
            state = State()
            names = [f"s{i:05d}" for i in range(size)]
            state.set_targets(targets(*names))
            state.set_pools(
                [PoolSettings(f"p{i:04d}", tuple(names[i : i + 10])) for i in range(0, size, 10)]
            )
            for i, name in enumerate(names):
                state.rtt_tcp_connect[name] = 0.01 + i % 97 / 1000
            state.outbox.set_sinks({"hook": "webhook"})
            for i in range(100):
                state.outbox.add(f"p{i:04d}", 1.0 + i, {"chosen": names[i], "detail": "x" * 80})
            builds, writes, reads = [], [], []
            text = ""
            for _ in range(rounds):
                c0 = time.process_time()
                text = json.dumps(state_data(state))
                builds.append(time.process_time() - c0)
                t0 = time.monotonic()
                assert await store.write_state(epoch, text)
                writes.append(time.monotonic() - t0)
                t0 = time.monotonic()
                await store.read_state()
                reads.append(time.monotonic() - t0)
            out[str(size)] = {
                "bytes": float(len(text)),
                "build cpu p50": summary(builds)["p50"],
                "write p50": summary(writes)["p50"],
                "read p50": summary(reads)["p50"],
            }
        await store.close()
    return out


SCALE_SHARDS = 12
SCALE_INTERVAL = 5.0


def scale_config(home: Path, labs: list[LabServer], port: int, hook: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    text = servers_yaml(labs * 4, interval=f"{SCALE_INTERVAL:g}s", timeout="2s")
    text += "pools:\n  - name: moodle\n    servers: [lab-1, lab-2, lab-3]\n"
    text += f"notify:\n  webhooks: [{{url: '{hook}', timeout: 5s}}]\n"
    dsn = f"postgresql://{MONITOR_USER}@127.0.0.1:{port}/moodle"
    text += f"ha:\n  database: {dsn}\n  lease: {LEASE:g}s\n  instance: {home.name}\n"
    text += f"  shards: {SCALE_SHARDS}\n"
    path = home / "servers.yaml"
    path.write_text(text)
    return path


async def _shards(serve: Serve, session: aiohttp.ClientSession) -> set[int]:
    try:
        async with session.get(f"{serve.base}/healthz") as resp:
            data: dict[str, Any] = await resp.json()
            return set(data.get("ha", {}).get("shards", []))
    except (aiohttp.ClientError, OSError):
        return set()


def _probed_at(db: Database) -> dict[str, float]:
    rows = db.execute(
        "SELECT server, (verdict::json->>'finished')::float8 FROM jitsi_monitor_ha_verdicts"
    )
    return {str(server): float(at) for server, at in rows}


async def scale_run(kills: int) -> dict[str, Any]:
    """Three instances on twelve shards, one killed ``kills`` times."""
    with postgresql() as db, tempfile.TemporaryDirectory(prefix="bench-ha-") as folder:
        db.execute(f"GRANT CREATE ON SCHEMA public TO {MONITOR_USER}")
        labs = [LabServer(LabOptions(latency=0.02 * i)) for i in range(3)]
        for lab in labs:
            await lab.start()
        receiver = Receiver()
        await receiver.start()
        hook = f"http://127.0.0.1:{receiver.port}/hook"
        where = Path(folder)
        serves = [
            Serve(where / n, scale_config(where / n, labs, db.port, hook), n)
            for n in ("mon-a", "mon-b", "mon-c")
        ]
        seen: dict[str, set[float]] = {}
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                for server, at in (await asyncio.to_thread(_probed_at, db)).items():
                    seen.setdefault(server, set()).add(at)
                await asyncio.sleep(0.2)

        everything = set(range(SCALE_SHARDS))
        takeovers: list[float] = []
        async with aiohttp.ClientSession() as session:
            for one in serves:
                await one.start()

            async def spread(among: list[Serve]) -> bool:
                held = [await _shards(one, session) for one in among]
                return set().union(*held) == everything and sum(map(len, held)) == SCALE_SHARDS

            await until(lambda: spread(serves), 60)
            watching = asyncio.ensure_future(watch())
            for k in range(kills):
                await asyncio.sleep(2 * SCALE_INTERVAL)
                victim = serves[k % 3]
                rest = [one for one in serves if one is not victim]
                t0 = time.monotonic()
                await victim.kill()
                await until(lambda r=rest: spread(r), 60)
                takeovers.append(time.monotonic() - t0)
                await victim.start()
                await until(lambda: spread(serves), 60)
            await asyncio.sleep(2 * SCALE_INTERVAL)
            stop.set()
            await watching
            for one in serves:
                await one.kill()
        for lab in labs:
            await lab.stop()
    gaps = [b - a for times in seen.values() for a, b in itertools.pairwise(sorted(times))]
    return {"takeover": summary(takeovers), "longest gap": max(gaps, default=float("nan"))}


async def verdict_cost(sizes: list[int], instances: int = 3) -> dict[str, dict[str, float]]:
    """Round trips per minute and their times for ``instances`` at each fleet size."""
    lease, interval, shards = 15.0, 60.0, 12
    heartbeat = lease / 5
    out: dict[str, dict[str, float]] = {}
    with postgresql() as db:
        db.execute(f"GRANT CREATE ON SCHEMA public TO {MONITOR_USER}")
        stores = []
        for i in range(instances):
            settings = HaSettings(
                parse_dsn(db.dsn), Password(MONITOR_PASSWORD), lease, f"mon-{i}", shards
            )
            store = Store(settings)
            await store.open()
            await store.claim(list(range(i, shards, instances)), shards)
            stores.append(store)
        leader = stores[0]
        assert await leader.try_lead() is not None
        for size in sizes:
            names = [f"s{i:05d}" for i in range(size)]
            split = shard_of(names, shards)
            text = verdict_text(report("x"))
            # Each heartbeat an instance writes the verdicts of the servers it probed
            # since its last: its share of the fleet times heartbeat / interval.
            due = max(1, round(size / instances * heartbeat / interval))
            writes, reads, beats = [], [], []
            after, rounds, issued = 0, 10, 0
            for r in range(rounds):
                for i, store in enumerate(stores):
                    t0 = time.monotonic()
                    await store.look()
                    issued += 1
                    beats.append(time.monotonic() - t0)
                    mine = [n for n in names if split[n] % instances == i]
                    batch = [mine[(r * due + j) % len(mine)] for j in range(due)]
                    rows: list[tuple[str, int, str, float | None]] = [
                        (n, split[n], text, 0.02) for n in batch
                    ]
                    t0 = time.monotonic()
                    await store.write_verdicts(rows)
                    issued += 1
                    writes.append(time.monotonic() - t0)
                t0 = time.monotonic()
                got = await leader.read_verdicts(after)
                issued += 1
                reads.append(time.monotonic() - t0)
                after = max((row[3] for row in got), default=after)
            per_heartbeat = issued / rounds
            out[str(size)] = {
                "round trips per minute": per_heartbeat * 60 / heartbeat,
                "verdicts per write": float(due),
                "heartbeat p50": summary(beats)["p50"],
                "write p50": summary(writes)["p50"],
                "read p50": summary(reads)["p50"],
            }
        for store in stores:
            await store.close()
    return out


async def _is(serve: Serve, session: aiohttp.ClientSession, role: str) -> bool:
    return await serve.role(session) == role


def _commits(db: Database) -> int:
    rows = db.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = 'moodle'")
    return int(rows[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--quiet", type=float, default=60.0, help="the cost window, seconds")
    parser.add_argument("--sizes", default="", help="only the cost of one store: 1000,10000")
    parser.add_argument("--scale", type=int, default=0, help="scale-out: kills of one of three")
    parser.add_argument("--verdicts", default="", help="scale-out round trips: 1000,10000")
    args = parser.parse_args()
    if args.verdicts:
        costs = asyncio.run(verdict_cost([int(n) for n in args.verdicts.split(",")]))
        for size, c in costs.items():
            print(
                f"{size} servers, 3 instances, lease 15 s, interval 60 s: "
                f"{c['round trips per minute']:.0f} round trips per minute; "
                f"{c['verdicts per write']:.0f} verdicts a write, heartbeat "
                f"{ms(c['heartbeat p50'], 1)}, write {ms(c['write p50'], 1)}, "
                f"leader's read {ms(c['read p50'], 1)}"
            )
        return
    if args.scale:
        fig = asyncio.run(scale_run(args.scale))
        t = fig["takeover"]
        print(
            f"scale-out, lease {LEASE:g} s, interval {SCALE_INTERVAL:g} s, "
            f"{int(t['count'])} kills: every shard held again p50 {ms(t['p50'], 0)}, "
            f"max {ms(t['max'], 0)}; longest gap between two probes {fig['longest gap']:.2f} s"
        )
        return
    if args.sizes:
        costs = asyncio.run(store_cost([int(n) for n in args.sizes.split(",")]))
        for size, c in costs.items():
            print(
                f"{size} servers: {c['bytes'] / 1024:.0f} KiB, build {ms(c['build cpu p50'], 1)} "
                f"CPU, write {ms(c['write p50'], 1)}, read {ms(c['read p50'], 1)}"
            )
        return
    figures = asyncio.run(run(args.kills, args.quiet))
    t = figures["takeover"]
    print(f"lease {LEASE:g} s, {int(t['count'])} kills")
    print(f"takeover p50 {ms(t['p50'], 0)}, max {ms(t['max'], 0)}")
    print(
        "events: {stored} stored, {lost} lost, {duplicates} duplicates".format(**figures["events"])
    )
    for key in (
        "db transactions per minute (2 instances)",
        "leader cpu seconds per minute",
        "single process cpu seconds per minute",
    ):
        print(f"{key}: {figures[key]:.2f}")


if __name__ == "__main__":
    main()
