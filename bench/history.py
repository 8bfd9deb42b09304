"""Benchmark 7: the cost of history (10,000 servers at 60 s, kept 7 days) and
the status pages' render time at 1,000 and 10,000 servers.

Write: every server's report, minute after minute, for ``--minutes``
(default 30: 300,000 reports), goes through ``History.add`` on the event
loop as ``serve`` does it (one round a minute; the writer thread writes it
in batches). Measured: CPU of the whole process (loop and writer thread)
per report, and the file's growth per report (the day tables, the
10-minute buckets, the daily roll-up and the indexes all grow with it).
Both are extrapolated to the target: 10,000 servers, a report each a
minute, 7 days kept. Whole UTC days are dropped, so the file holds up to 8
days of reports; a prune pass over the written file is timed too.

Pages: a ``State`` with N servers, each with a full report (as the metrics
benchmark builds it), and a history file holding 7 days of 10-minute
buckets and 30 daily roll-ups for the first 1,000 servers, 7 days of
minute-by-minute reports for the server whose page is timed, and pool
events. Timed: ``Pages.index`` (the 100 servers of the first page, their
history read in the reader thread), the same filtered by state, 1,000
servers on one page, a server's page over 7 days, a pool's page. Target:
``/`` under 200 ms with 1,000 servers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ms, step

__all__ = ["add_arguments", "run"]

DAY = 86400
WEEK_ROUNDS = 7 * 1440  # reports per server in 7 days at 60 s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servers", type=int, default=10000, help="fleet written to history")
    parser.add_argument("--minutes", type=int, default=30, help="rounds of the fleet written")
    parser.add_argument("--pages", default="1000,10000", help="fleet sizes the pages are timed at")
    parser.add_argument("--repeat", type=int, default=7, help="renders timed per page")


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


async def _write(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    from bench.render import build_state
    from monitor.history import Limits, open_history, report_record

    state, _ = build_state(args.servers, 10, app=False)
    records = [report_record(r) for r in state.reports.values()]
    history = await asyncio.to_thread(open_history, path, Limits())
    assert history is not None
    start = time.time() - args.minutes * 60
    # The first round creates the tables and the servers' rows: not counted.
    for record in records:
        history.add(dataclasses.replace(record, at=start - 60))
    await history.flush()
    size0, cpu0, wall0 = _file_bytes(path), time.process_time(), time.monotonic()
    on_loop = 0.0
    for minute in range(args.minutes):
        at = start + minute * 60
        t0 = time.perf_counter()
        for i, record in enumerate(records):
            # as a schedule spreads them over the minute
            history.add(dataclasses.replace(record, at=at + i * 60 / len(records)))
        on_loop += time.perf_counter() - t0
        await history.flush()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    grown = _file_bytes(path) - size0
    prune0 = time.monotonic()
    await history.flush(prune_at=time.time())
    prune = time.monotonic() - prune0
    await history.close()
    reports = args.minutes * len(records)
    per_report_cpu = cpu / reports
    per_report_bytes = grown / reports
    share = per_report_cpu * 10000 / 60
    disk_7d = per_report_bytes * 10000 * 1440 * 8
    print(
        f"   {reports:,} reports ({args.servers:,} servers x {args.minutes} min) in {wall:.1f} s "
        f"wall, {cpu:.1f} s CPU (loop + writer): {per_report_cpu * 1e6:.1f} us and "
        f"{per_report_bytes:.1f} bytes per report; on the loop {on_loop / reports * 1e6:.1f} us "
        "a report (making the record, queueing it)"
    )
    print(
        f"   10,000 servers at 60 s: {share * 100:.2f} % of a core; 8 days of reports "
        f"(7 d kept, whole days dropped) take {disk_7d / 1e9:.2f} GB; a prune pass {ms(prune)}"
    )
    return {
        "servers": args.servers,
        "minutes": args.minutes,
        "reports": reports,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_per_report_us": per_report_cpu * 1e6,
        "loop_per_report_us": on_loop / reports * 1e6,
        "bytes_per_report": per_report_bytes,
        "cpu_share_10k_at_60s": share,
        "disk_bytes_10k_7d": disk_7d,
        "prune_s": prune,
    }


class _Held:
    """The longest the event loop was late to wake a 1 ms sleep: how long
    a render held the loop (its history reads run in a thread)."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def tick(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            self.longest = max(self.longest, time.perf_counter() - t0 - 0.001)


def _fill(path: Path, names: list[str], now: float) -> None:
    """7 days of buckets and 30 days of roll-ups for ``names``, straight into the file."""
    import sqlite3

    from monitor.history.schema import BUCKET

    db = sqlite3.connect(path)
    db.executemany("INSERT OR IGNORE INTO servers(name) VALUES (?)", [(n,) for n in names])
    ids = dict(db.execute("SELECT name, id FROM servers"))
    first = int(now) - int(now) % BUCKET - 7 * DAY
    db.executemany(
        "INSERT OR REPLACE INTO buckets VALUES (?,?,?,?,?,?)",
        ((ids[n], at, 10, 10, 200_000, 10) for n in names for at in range(first, int(now), BUCKET)),
    )
    today = int(now // DAY)
    db.executemany(
        "INSERT OR REPLACE INTO daily VALUES (?,?,?,?)",
        ((ids[n], d, 1430, 1440) for n in names for d in range(today - 30, today + 1)),
    )
    db.commit()
    db.close()


async def _pages(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    from bench.render import build_state
    from monitor.config.pages import StatusSettings
    from monitor.history import Limits, open_history, pool_record, report_record
    from monitor.ladder import PoolChange
    from monitor.selector import Decision
    from monitor.status import Pages

    sizes = [int(s) for s in args.pages.split(",") if s]
    results: dict[str, Any] = {}
    now = time.time()
    for size in sizes:
        state, _ = build_state(size, 10, app=False)
        names = sorted(state.targets)
        file = path.with_name(f"pages-{size}.sqlite")
        history = await asyncio.to_thread(open_history, file, Limits())
        assert history is not None
        detail = names[0]
        record = report_record(state.reports[detail])
        for minute in range(WEEK_ROUNDS, 0, -1):
            history.add(dataclasses.replace(record, at=now - minute * 60))
            if minute % 5000 == 0:
                await history.flush()
        pool = sorted(state.pools)[0]
        members = state.pools[pool].servers
        for hour in range(0, 7 * 24, 6):
            history.add(
                pool_record(
                    Decision(
                        pool, members[0], members[1], PoolChange.INELIGIBLE, "x", now - hour * 3600
                    )
                )
            )
        await history.flush()
        await history.close()
        await asyncio.to_thread(_fill, file, names[:1000], now)
        history = await asyncio.to_thread(open_history, file, Limits())
        assert history is not None
        pages = Pages(state, StatusSettings(), history)
        cases: dict[str, Any] = {
            "index": functools.partial(pages.index, {}),
            "index_down": functools.partial(pages.index, {"state": "down"}),
            "server_7d": functools.partial(pages.server, detail, {"range": "7d"}),
            "pool": functools.partial(pages.pool, pool, {}),
        }
        if size <= 1000:
            one = Pages(state, StatusSettings(page_size=1000), history)
            cases["index_all_on_one_page"] = functools.partial(one.index, {})
        got: dict[str, Any] = {}
        for name, make in cases.items():
            await make()  # warm: the reader's connection, caches
            times = []
            held = _Held()
            ticker = asyncio.ensure_future(held.tick())
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                html = await make()
                times.append(time.perf_counter() - t0)
                await asyncio.sleep(0.005)
            ticker.cancel()
            got[name] = {
                "median_s": statistics.median(times),
                "max_s": max(times),
                "loop_held_max_s": held.longest,
                "bytes": len(html or ""),
            }
            print(
                f"   {size:>6,} servers  {name:<22} median {ms(got[name]['median_s'], 1):>10}  "
                f"max {ms(got[name]['max_s'], 1):>10}  loop held {ms(held.longest, 1):>9}  "
                f"{len(html or '') / 1024:.0f} KiB"
            )
        await history.close()
        results[str(size)] = got
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jm-history-") as tmp:
        path = Path(tmp) / "history.sqlite"
        with step(f"history: {args.servers:,} servers' reports for {args.minutes} minutes"):
            written = asyncio.run(_write(args, path))
        with step(f"status pages at {args.pages} servers"):
            pages = asyncio.run(_pages(args, path))
    print(f"   (cores: {os.cpu_count()})")
    return {"write": written, "pages": pages}
