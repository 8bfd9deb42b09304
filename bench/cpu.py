"""Benchmark 1: CPU per HTTPS web probe, ours against blackbox_exporter.

One probe is resolve + connect + full TLS handshake + ``GET /`` on a fresh
connection. Ours is the monitor's own code path (``HttpClient.get`` with the
Runner's resolver settings and ``make_ssl_context``), run in a process of its
own with ``concurrency`` probes at a time; its CPU comes from
``time.process_time()`` around the measured probes. blackbox_exporter probes
the same nginx with the same concurrency, driven by another process; its CPU
comes from ``/proc/PID/stat`` before and after. Rounds alternate the sides,
so both see the same machine; the ratio is taken per round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import proc_cpu_seconds, run_bench_json, run_loop, step
from bench.targets import Blackbox, Certs, Nginx

__all__ = ["add_arguments", "run", "worker", "worker_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--probes", type=int, default=3000, help="probes per side and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--host", default="localhost", help="target host name (localhost: resolved each probe)"
    )
    parser.add_argument(
        "--loops",
        default="asyncio,uvloop",
        help="event loops to measure ours with (default: the one the monitor picks itself)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="also measure the monitor package in this directory (e.g. an earlier "
        "commit's monitor/, from git archive) on the first of --loops, in the same rounds",
    )
    parser.add_argument(
        "--ladder",
        action="store_true",
        help="also measure our whole web ladder (/, config.js, external_api.js on one connection)",
    )


def worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--probes", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop", "default"))
    parser.add_argument("--what", default="get", choices=("get", "ladder"))


async def _probe_many(args: argparse.Namespace) -> dict[str, Any]:
    from monitor.checks.web.probe import probe_web
    from monitor.net import NetError, Resolver, make_ssl_context
    from monitor.net.http import HttpClient
    from monitor.runner import user_agent

    # As the Runner builds them: one resolver, one context per (verify, ca_file).
    resolver = Resolver()
    ctx = make_ssl_context(True, args.ca_file)
    agent = user_agent(None)
    loop = asyncio.get_running_loop()
    failures: list[str] = []

    async def one() -> None:
        async with HttpClient(
            resolver=resolver,
            ssl_context=ctx,
            user_agent=agent,
            max_body_bytes=4 * 1024 * 1024,
            max_redirects=5,
        ) as client:
            if args.what == "ladder":
                result = await probe_web(client, args.url, "self_hosted", loop.time() + 15)
                bad = [c for c in result.checks if not c.success]
                if bad:
                    failures.append(f"{bad[0].check}: {bad[0].reason}: {bad[0].detail}")
                return
            try:
                fetch = await client.get(args.url)
            except NetError as exc:
                failures.append(f"{exc.reason}: {exc.detail}")
                return
            if fetch.response is None or fetch.response.status != 200:
                failures.append("not 200")

    async def batch(count: int) -> None:
        left = count

        async def lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one()

        await asyncio.gather(*(lane() for _ in range(args.concurrency)))

    await batch(args.warmup)
    failures.clear()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await batch(args.probes)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await resolver.close()
    return {
        "cpu": cpu,
        "wall": wall,
        "probes": args.probes,
        "failed": len(failures),
        "failures": failures[:3],
    }


def worker(args: argparse.Namespace) -> None:
    """One side of a round: our probes in this process; prints JSON."""
    print(json.dumps(run_loop(_probe_many(args), args.loop)), flush=True)


def _blackbox_round(bb: Blackbox, url: str, probes: int, concurrency: int) -> dict[str, Any]:
    common = ["--blackbox", bb.base, "--target", url, "--concurrency", str(concurrency)]
    run_bench_json(["_driver", *common, "--count", str(max(50, concurrency))])  # warm-up
    cpu0 = proc_cpu_seconds(bb.pid)
    result = run_bench_json(["_driver", *common, "--count", str(probes)])
    cpu = proc_cpu_seconds(bb.pid) - cpu0
    return {"cpu": cpu, "wall": result["wall"], "probes": probes, "failed": result["failed"]}


def _ours_round(
    url: str,
    ca_file: Path,
    probes: int,
    concurrency: int,
    loop: str,
    what: str,
    source: Path | None = None,
) -> dict[str, Any]:
    env = None
    if source is not None:
        env = {**os.environ, "JITSI_BENCH_MONITOR_SRC": str(source.resolve())}
    return run_bench_json(
        [
            "_cpu-worker",
            "--url",
            url,
            "--ca-file",
            str(ca_file),
            "--probes",
            str(probes),
            "--concurrency",
            str(concurrency),
            "--loop",
            loop,
            "--what",
            what,
        ],
        env=env,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    loops = [x for x in args.loops.split(",") if x]
    sides = [f"ours/{loop}" for loop in loops] + ["blackbox"]
    if args.before is not None:
        sides.insert(0, f"before/{loops[0]}")
    if args.ladder:
        sides += [f"ladder/{loop}" for loop in loops]
    per: dict[str, list[float]] = {side: [] for side in sides}
    ratios: dict[str, list[float]] = {side: [] for side in sides if side != "blackbox"}
    with (
        step(
            f"CPU per HTTPS probe: {args.probes} probes x {args.rounds} rounds, "
            f"concurrency {args.concurrency}, host {args.host}"
        ),
        tempfile.TemporaryDirectory(prefix="jitsi-bench-") as tmp,
    ):
        certs = Certs(Path(tmp))
        with Nginx(certs) as nginx, Blackbox(certs.ca_file) as bb:
            url = nginx.url(args.host)
            for rnd in range(args.rounds):
                order = sides if rnd % 2 == 0 else list(reversed(sides))
                got: dict[str, float] = {}
                for side in order:
                    if side == "blackbox":
                        res = _blackbox_round(bb, url, args.probes, args.concurrency)
                    else:
                        kind, loop = side.split("/")
                        what = "ladder" if kind == "ladder" else "get"
                        source = args.before if kind == "before" else None
                        res = _ours_round(
                            url, certs.ca_file, args.probes, args.concurrency, loop, what, source
                        )
                    if res["failed"]:
                        raise RuntimeError(f"{side}: {res['failed']} probes failed: {res}")
                    got[side] = res["cpu"] / res["probes"]
                    per[side].append(got[side])
                    print(
                        f"   round {rnd + 1} {side:16} {got[side] * 1000:6.3f} ms CPU/probe"
                        f"  ({res['probes'] / res['wall']:.0f} probes/s)",
                        flush=True,
                    )
                for side in ratios:
                    ratios[side].append(got[side] / got["blackbox"])
    print("   median CPU per probe:")
    for side in sides:
        line = f"     {side:16} {statistics.median(per[side]) * 1000:6.3f} ms"
        if side in ratios:
            values = ratios[side]
            line += f"   ratio to blackbox {statistics.median(values):.2f}"
            line += f" (rounds {min(values):.2f}-{max(values):.2f})"
            line += " (a ladder is 3 GETs)" if side.startswith("ladder") else " (target <= 0.9)"
        print(line)
    print(f"   load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    return {
        "cpu_per_probe_ms": {s: statistics.median(v) * 1000 for s, v in per.items()},
        "ratio_to_blackbox": {s: statistics.median(v) for s, v in ratios.items()},
        "rounds": {s: [x * 1000 for x in v] for s, v in per.items()},
        "probes": args.probes,
        "concurrency": args.concurrency,
        "host": args.host,
    }
