"""Benchmark 8: the cost of a scrape, gzip or not, at 1,000 and 10,000 servers.

For each size a server process (bench 4's ``_metrics-server``: a State with
every server's full report, served by the real ``make_app``) is scraped as
Prometheus scrapes it (``Accept-Encoding: gzip``) and as a scraper that does
not ask for it, alternating. Printed per size and side: the bytes on the wire,
the whole answer's p50 / p99 (to the body's last byte, not decompressed), and
what gunzip costs the scraper. With ``--before DIR`` (the previous monitor
package, from git archive) the same GETs go to it too: "before" is serve as it
was (it ignores Accept-Encoding), "ours" is this checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

from bench.common import ms, spawn_bench, step, summary

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1000,10000", help="servers, comma-separated")
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--requests", type=int, default=30, help="timed GETs per size and way")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="also serve the monitor package in this directory (e.g. main's monitor/, from "
        "git archive) and alternate GETs between the two",
    )
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))


# What Prometheus sends (scrape/scrape.go, acceptEncodingHeader), and a scraper that does not.
WAYS = {"gzip": "gzip", "identity": "identity"}


def _get(port: int, encoding: str) -> tuple[float, bytes, str]:
    """GET /metrics: seconds to the body's last byte, the body as sent, its encoding."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        t = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Accept-Encoding": encoding})
        resp = conn.getresponse()
        body = resp.read()
        return time.perf_counter() - t, body, resp.getheader("Content-Encoding") or "identity"
    finally:
        conn.close()


def _gunzip(body: bytes) -> tuple[float, int]:
    t = time.perf_counter()
    size = len(zlib.decompress(body, 31))
    return time.perf_counter() - t, size


def _size(args: argparse.Namespace, servers: int) -> dict[str, Any]:
    command = ["_metrics-server", "--servers", str(servers), "--pools", str(args.pools)]
    command += ["--loop", args.loop]
    sides: list[tuple[str, Path | None]] = [("ours", None)]
    if args.before is not None:
        sides.insert(0, ("before", args.before))
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        ports = {}
        for side, source in sides:
            env = None
            if source is not None:
                env = {**os.environ, "JITSI_BENCH_MONITOR_SRC": str(source.resolve())}
            child = stack.enter_context(spawn_bench(command, stdout=-1, env=env))
            assert child.proc.stdout is not None
            ports[side] = json.loads(child.proc.stdout.readline())["port"]
        for side, _ in sides:  # the first scrape formats what the listener did not
            for encoding in WAYS.values():
                _get(ports[side], encoding)
        times: dict[tuple[str, str], list[float]] = {}
        gunzips: dict[tuple[str, str], list[float]] = {}
        sizes: dict[tuple[str, str], tuple[int, int, str]] = {}
        for _ in range(args.requests):
            for way, encoding in WAYS.items():
                for side, _ in sides:
                    seconds, body, sent = _get(ports[side], encoding)
                    times.setdefault((side, way), []).append(seconds)
                    plain = len(body)
                    if sent == "gzip":
                        spent, plain = _gunzip(body)
                        gunzips.setdefault((side, way), []).append(spent)
                    sizes[side, way] = (len(body), plain, sent)
        for side, _ in sides:
            for way in WAYS:
                wire, plain, sent = sizes[side, way]
                total = summary(times[side, way])
                gunzip = summary(gunzips.get((side, way), []))
                out.setdefault(side, {})[way] = {
                    "sent": sent,
                    "bytes": wire,
                    "body_bytes": plain,
                    "total": total,
                    "gunzip": gunzip,
                }
                print(
                    f"   {servers:>6} {side:7} asks {way:8}  answered {sent:8}"
                    f"  {wire / 1e6:7.2f} MB on the wire ({plain / 1e6:.1f} MB of text)"
                    f"   p50 {ms(total['p50'], 1):>9}  p99 {ms(total['p99'], 1):>9}"
                    + (f"   gunzip p50 {ms(gunzip['p50'], 1)}" if sent == "gzip" else ""),
                    flush=True,
                )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    results: dict[str, Any] = {"loop": args.loop, "requests": args.requests}
    with step(
        f"/metrics scraped with and without gzip at {', '.join(map(str, sizes))} servers, "
        f"{args.requests} GETs each way, loop {args.loop}"
    ):
        loads = [os.getloadavg()[0]]
        for servers in sizes:
            results[str(servers)] = _size(args, servers)
            loads.append(os.getloadavg()[0])
    print(f"   load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}")
    results["load"] = loads
    return results
