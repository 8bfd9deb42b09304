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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from monitor.ha.store import Store
from monitor.lab import LabOptions, LabServer, servers_yaml
from monitor.moodle.database import Password, parse_dsn
from monitor.selector import PoolSettings
from monitor.state import State, state_data
from tests.support.databases import MONITOR_PASSWORD, MONITOR_USER, Database, postgresql
from tests.support.metrics import targets


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
    args = parser.parse_args()
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
