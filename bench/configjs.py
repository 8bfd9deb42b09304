"""Benchmark 5: config.js in the sandbox: cost, cache, and the loop under a hostile file.

Three parts, in this process (the engine runs in the monitor's own worker
threads, so this is what ``serve`` sees):

1. Evaluation cost per config.js: every fixture in tests/fixtures/configjs
   (nginx's SSI filled in as at the root), plus upstream's file at its real
   size (the trimmed fixture padded with its comments' worth of text).
2. Cache hit rate over simulated rounds: a fleet whose servers serve one of
   the fixtures, a few of them changing their file (a deploy) each round.
3. The event loop's lateness (a 10 ms ticker's) while hostile config.js files
   are evaluated: endless loops, memory bombs, a 524 KB doubling file; with
   the process's RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, ms, proc_memory_mb, run_loop, step, summary

__all__ = ["add_arguments", "run"]

FIXTURES = ROOT / "tests" / "fixtures" / "configjs"
_ECHO = re.compile(r'<!--#\s*echo\s+var="([^"]*)"(?:\s+default="([^"]*)")?\s*-->')
# docker-jitsi-meet serves its parts as one file
_JOINED = {
    "docker-2026 (system+settings+custom)": (
        "docker-2026-system.js",
        "docker-2026-settings.js",
        "custom-config-location.js",
    ),
    "jaas docker (system+custom)": ("docker-jaas-system.js", "provisioning-jaas-custom.js"),
}
PAGE = "https://meet.example.org/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=200, help="evaluations per fixture")
    parser.add_argument("--servers", type=int, default=500, help="fleet size for the cache part")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--churn", type=float, default=0.02, help="servers changing per round")
    parser.add_argument("--hostile", type=int, default=3, help="runs of each hostile file")
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))


def _filled(text: str) -> str:
    return _ECHO.sub(lambda m: m.group(2) or "", text)


def _bodies() -> dict[str, bytes]:
    parts = {name for joined in _JOINED.values() for name in joined[1:]}
    out = {
        p.name: _filled(p.read_text()).encode()
        for p in sorted(FIXTURES.glob("*.js"))
        if p.name not in parts
    }
    for label, parts in _JOINED.items():
        out[label] = "\n".join(_filled((FIXTURES / p).read_text()) for p in parts).encode()
    # upstream's config.js is ~75 KB, nearly all comments
    padding = "".join(f"    // option {i}: what it does, and its default\n" for i in range(1500))
    upstream = _filled((FIXTURES / "upstream-2023.js").read_text())
    out["upstream-2023 at full size"] = upstream.replace(
        "    testing: {", padding + "    testing: {"
    ).encode()
    return out


def _cost(repeat: int) -> dict[str, Any]:
    from monitor.checks.web.configjs import Reader

    reader = Reader()
    results: dict[str, Any] = {}
    print(f"   {'config.js':38} {'bytes':>7}   p50        p99        verdict")
    for name, body in _bodies().items():
        times = []
        found = None
        for _ in range(repeat):
            started = time.perf_counter()
            found = reader.evaluate(body, PAGE)
            times.append(time.perf_counter() - started)
        assert found is not None
        stats = summary(times)
        results[name] = {"bytes": len(body), "seconds": stats, "reason": found.reason.value}
        print(
            f"   {name:38} {len(body):>7}   {ms(stats['p50']):>9}  {ms(stats['p99']):>9}  "
            f"{found.reason.value}"
        )
    return results


async def _cache(servers: int, rounds: int, churn: float) -> dict[str, Any]:
    from monitor.checks.web.configjs import Reader

    rnd = random.Random(7)
    bodies = list(_bodies().values())
    reader = Reader(cache_size=max(1024, servers))
    fleet = [
        (f"https://meet-{i:04d}.example.org/", rnd.choice(bodies) + b"\n// v0")
        for i in range(servers)
    ]
    loop = asyncio.get_running_loop()
    per_round = []
    for r in range(rounds):
        if r:
            for i in rnd.sample(range(servers), max(1, int(servers * churn))):
                url, body = fleet[i]
                fleet[i] = (url, body + f"\n// v{r}".encode())
        hits, evaluations = reader.stats.hits, reader.stats.evaluations
        started = time.perf_counter()
        await asyncio.gather(
            *(reader.read(body, url, url + "config.js", loop.time() + 10) for url, body in fleet)
        )
        elapsed = time.perf_counter() - started
        done = reader.stats.hits - hits
        ran = reader.stats.evaluations - evaluations
        per_round.append({"hit_rate": done / servers, "evaluations": ran, "seconds": elapsed})
        print(
            f"   round {r + 1}: {done / servers:6.1%} hits, {ran:4d} evaluations, "
            f"{elapsed * 1000:7.1f} ms for {servers} servers"
        )
    total = reader.stats.hits + reader.stats.misses
    overall = reader.stats.hits / total if total else 0.0
    later = [x["hit_rate"] for x in per_round[1:]]
    print(
        f"   overall {overall:.1%} hits; after the first round "
        f"{(sum(later) / len(later)) if later else 0:.1%}; cache holds {reader.cached()}"
    )
    return {"rounds": per_round, "hit_rate": overall, "cached": reader.cached()}


HOSTILE = {
    "while(true){}": "var config = {}; while (true) {}",
    "regex backtracking": "/(a+)+$/.test('a'.repeat(40) + 'b'); var config = {};",
    "objects until OOM": "var a = []; for (;;) a.push({x: a.length});",
    "cyclic objects until OOM": "var a = []; for (;;) { var o = {}; o.me = o; a.push(o); }",
    "string doubling, 524 KB file": (
        "var s = '" + "A" * (262 * 1024) + "'; var copies = [s, s, s];\n"
        "for (var i = 0; i < 40; i++) { s = s + s; copies.push(s, s + i); }\n"
        "var config = { websocket: copies.join(',') };\n"
    ),
    "unterminated 60 KB string": "var config = {websocket: '" + "a" * 60000 + "\\",
}


async def _lag(runs: int) -> dict[str, Any]:
    from monitor.checks.web.configjs import Reader

    loop = asyncio.get_running_loop()
    late: list[float] = []
    stop = False

    async def ticker() -> None:
        # perf_counter: uvloop's clock has 1 ms steps
        while not stop:
            due = time.perf_counter() + 0.010
            await asyncio.sleep(0.010)
            late.append(max(0.0, time.perf_counter() - due))

    async def measure(seconds: float, work: Any = None) -> dict[str, float]:
        late.clear()
        if work is None:
            await asyncio.sleep(seconds)
        else:
            await work
        return summary(list(late))

    tick = asyncio.create_task(ticker())
    results: dict[str, Any] = {}
    try:
        await asyncio.sleep(0.5)  # past the loop's first ticks
        base = await measure(2.0)
        results["idle"] = {"lateness": base}
        print(
            f"   {'(nothing evaluated, 2 s)':30}   lateness p50 {ms(base['p50'])}  "
            f"p99 {ms(base['p99'])}  max {ms(base['max'])}"
        )
        for name, js in HOSTILE.items():
            before = proc_memory_mb()
            lateness: list[float] = []
            outcome = ""
            took = []
            for n in range(runs):
                reader = Reader()  # no cache: every run evaluates
                body = (js + f"\n// {n}").encode()
                started = time.perf_counter()
                found = reader.read(body, PAGE, PAGE + "config.js", loop.time() + 15)
                late.clear()
                verdict = await found
                took.append(time.perf_counter() - started)
                lateness += late
                outcome = verdict.reason.value
            after = proc_memory_mb()
            stats = summary(lateness)
            results[name] = {
                "lateness": stats,
                "seconds": summary(took),
                "reason": outcome,
                "rss_before_mb": before.get("VmRSS", 0.0),
                "rss_after_mb": after.get("VmRSS", 0.0),
                "hwm_mb": after.get("VmHWM", 0.0),
            }
            print(
                f"   {name:30}   lateness p50 {ms(stats['p50'])}  p99 {ms(stats['p99'])}  "
                f"max {ms(stats['max'])}   "
                f"took {ms(summary(took)['max'], 0)}  {outcome:16} "
                f"RSS {before.get('VmRSS', 0):.0f} -> {after.get('VmRSS', 0):.0f} MiB "
                f"(peak {after.get('VmHWM', 0):.0f})"
            )
    finally:
        stop = True
        await tick
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with step(f"config.js evaluation cost ({args.repeat} runs each, fresh runtime every run)"):
        results["cost"] = _cost(args.repeat)
    with step(
        f"cache over {args.rounds} rounds of {args.servers} servers, "
        f"{args.churn:.0%} changing their file each round"
    ):
        results["cache"] = run_loop(_cache(args.servers, args.rounds, args.churn), args.loop)
    with step(f"event loop lateness (10 ms ticker) while hostile files run, loop {args.loop}"):
        results["hostile"] = run_loop(_lag(args.hostile), args.loop)
    return results


if __name__ == "__main__":  # pragma: no cover
    print(Path(__file__).name, "is run through: python -m bench configjs")
