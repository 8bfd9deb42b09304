"""Benchmark 4: ``/metrics`` render time and process memory with 10,000 servers.

A server process builds a State with N configured servers, each with a
full report (every check, HTTP and XMPP phases, a certificate, the token
matrix, smoothed round trips) recorded through ``State.record``, plus a few
pools, and serves it with the real ``make_app``. This process times
``GET /metrics`` over HTTP (the renderer behind it may change) and reads the
server's RSS from /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from bench.common import ms, proc_memory_mb, run_loop, spawn_bench, step, summary

__all__ = ["add_arguments", "build_state", "run", "server", "server_arguments"]


def server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servers", type=int, required=True)
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))


def build_state(servers: int, pools: int, seed: int = 1, app: bool = True) -> tuple[Any, Any]:
    """A State as ``serve`` holds it after every server has been probed once, and its app.

    As in serve, the app is made before the reports come in (a renderer may
    do its work as each report is recorded).
    """
    from monitor.checks import LADDER, make_report
    from monitor.checks.jwt.cases import JwtCase
    from monitor.checks.jwt.result import JwtResult
    from monitor.checks.signalling.xmpp import XmppResult
    from monitor.checks.web.probe import WebResult
    from monitor.domain import Target
    from monitor.ladder import HTTP_PHASES, XMPP_PHASES
    from monitor.model import CertInfo, Check, CheckResult, ConfigFacts, Phase, Reason
    from monitor.selector import PoolSettings
    from monitor.server import make_app
    from monitor.state import State

    rnd = random.Random(seed)
    now = time.time()
    state = State(location="bench")
    names = [f"meet-{i:05d}.school.example" for i in range(servers)]
    teams = ("it", "teaching", "research", "admin")
    state.set_targets(
        [
            Target(
                name=name,
                url=f"https://{name}/",
                kind="self_hosted" if i % 10 else "jaas",
                interval=60.0,
                timeout=15.0,
                labels=(("region", f"r{i % 7}"), ("team", teams[i % len(teams)])),
            )
            for i, name in enumerate(names)
        ]
    )
    members = max(1, min(5, servers // max(1, pools)))
    state.set_pools(
        [
            PoolSettings(
                name=f"pool-{p}",
                servers=tuple(names[p * members : (p + 1) * members]),
                require=("web", "signalling", "jwt"),
                embedding=True,
            )
            for p in range(pools)
            if (p + 1) * members <= servers
        ]
    )

    application = make_app(state) if app else None

    def ph(names: tuple[str, ...], scale: float) -> tuple[Phase, ...]:
        return tuple(Phase(n, rnd.uniform(0.2, 1.0) * scale) for n in names)

    for i, name in enumerate(names):
        down = i % 20 == 7  # one in twenty is down, for variety
        web = (
            CheckResult(Check.WEB, Reason.CONNECT_REFUSED, f"cannot connect to {name}:443")
            if down
            else CheckResult(Check.WEB, Reason.OK, "", ph(HTTP_PHASES, 0.02))
        )
        checks = [
            web,
            CheckResult(Check.CONFIGJS, Reason.OK, "", ph(HTTP_PHASES, 0.01)),
            CheckResult(Check.EXTERNAL_API, Reason.OK, "", ph(HTTP_PHASES, 0.01)),
            CheckResult(Check.EMBED, Reason.OK, "embedded meetings are not cut off"),
            CheckResult(Check.SIGNALLING, Reason.OK, "", ph(XMPP_PHASES[:5], 0.02)),
            CheckResult(Check.FOCUS, Reason.OK, ""),
            CheckResult(Check.MUC, Reason.OK, "joined as member/participant"),
            CheckResult(Check.JWT_VALID, Reason.OK, ""),
            CheckResult(Check.JWT_ENFORCED, Reason.OK, ""),
            CheckResult(Check.MODERATION, Reason.OK, ""),
        ]
        started = now - rnd.uniform(1, 60)
        web_found = WebResult(
            http_phases=ph(HTTP_PHASES, 0.02),
            http_status=200,
            cert=CertInfo(
                not_after=now + rnd.uniform(5, 90) * 86400,
                tls_version="TLSv1.3",
                subject=f"CN={name}",
                issuer="CN=R11,O=Let's Encrypt,C=US",
            ),
            config=ConfigFacts(
                domain=name,
                muc=f"conference.{name}",
                focus=f"focus.{name}",
                bosh=f"https://{name}/http-bind",
                websocket=f"wss://{name}/xmpp-websocket",
                disable_iframe_api=False,
            ),
            embed_limit_seconds=0,
            connect_rtt=rnd.uniform(0.002, 0.05),
        )
        xmpp_found = XmppResult(
            phases=ph(XMPP_PHASES, 0.05),
            ping_rtt=rnd.uniform(0.005, 0.08),
            role="participant",
            affiliation="member",
        )
        report = make_report(
            LADDER,
            server=name,
            started_at=started,
            finished_at=started + rnd.uniform(2, 6),
            duration=rnd.uniform(2, 6),
            checks=tuple(checks),
            results=(web_found, xmpp_found, JwtResult(tuple((case, True) for case in JwtCase))),
        )
        state.record(report)
    return state, application


async def _serve(args: argparse.Namespace) -> None:
    import asyncio
    import gc
    import signal

    from aiohttp import web

    before = proc_memory_mb()["VmRSS"]
    t = time.perf_counter()
    _, application = build_state(args.servers, args.pools)
    built = time.perf_counter() - t
    # The server's garbage collections while it is scraped: (generation, seconds).
    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(collected)

    async def gc_pauses(_: web.Request) -> web.Response:
        """The bench's own route (not the monitor's): the GC pauses so far."""
        return web.json_response(pauses)

    application.router.add_get("/bench-gc-pauses", gc_pauses)
    runner = web.AppRunner(application, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    info = {
        "port": runner.addresses[0][1],
        "rss_before_mb": before,
        "rss_built_mb": proc_memory_mb()["VmRSS"],
        "build_s": built,
    }
    print(json.dumps(info), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def server(args: argparse.Namespace) -> None:
    """Build the state, serve it, print ``{"port": ...}``, run until SIGTERM."""
    run_loop(_serve(args), args.loop)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servers", type=int, default=10000)
    parser.add_argument("--pools", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20, help="timed GETs per format")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of --requests GETs per format (the noise)"
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="also serve the monitor package in this directory (e.g. the previous commit's "
        "monitor/, from git archive) and alternate GETs between the two: an A/B",
    )
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))


def _get(port: int, accept: str | None) -> tuple[float, float, int]:
    """GET /metrics: seconds to the response head, to the body's end (what a scraper
    waits: the render, however it is sent, and the transfer), and the body's size."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        t = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        head = time.perf_counter() - t
        size = len(resp.read())
        return head, time.perf_counter() - t, size
    finally:
        conn.close()


def _gc_pauses(port: int) -> list[tuple[int, float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/bench-gc-pauses")
        return [(int(g), float(p)) for g, p in json.loads(conn.getresponse().read())]
    finally:
        conn.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    command = ["_metrics-server", "--servers", str(args.servers), "--pools", str(args.pools)]
    command += ["--loop", args.loop]
    formats = {"text": None, "openmetrics": "application/openmetrics-text; version=1.0.0"}
    sides: list[tuple[str, Path | None]] = [("ours", None)]
    if args.before is not None:
        sides.insert(0, ("before", args.before))
    out: dict[str, Any] = {"servers": args.servers}
    with (
        step(
            f"/metrics with {args.servers} servers with results, {args.pools} pools, "
            f"loop {args.loop}" + (" (before and ours, GETs alternating)" if len(sides) > 1 else "")
        ),
        contextlib.ExitStack() as stack,
    ):
        children, infos = {}, {}
        for side, source in sides:
            env = None
            if source is not None:
                env = {**os.environ, "JITSI_BENCH_MONITOR_SRC": str(source.resolve())}
            child = stack.enter_context(spawn_bench(command, stdout=-1, env=env))
            assert child.proc.stdout is not None
            children[side] = child
            infos[side] = json.loads(child.proc.stdout.readline())
        loads = [os.getloadavg()[0]]
        results: dict[str, dict[str, Any]] = {side: {} for side, _ in sides}
        for label, accept in formats.items():
            firsts = {side: _get(infos[side]["port"], accept) for side, _ in sides}
            heads: dict[str, list[float]] = {side: [] for side, _ in sides}
            totals: dict[str, list[float]] = {side: [] for side, _ in sides}
            rounds: dict[str, list[dict[str, float]]] = {side: [] for side, _ in sides}
            size = dict.fromkeys(infos, 0)
            for _ in range(max(1, args.repeats)):
                round_totals: dict[str, list[float]] = {side: [] for side, _ in sides}
                for _ in range(args.requests):
                    for side, _ in sides:
                        head, total, size[side] = _get(infos[side]["port"], accept)
                        heads[side].append(head)
                        totals[side].append(total)
                        round_totals[side].append(total)
                for side, _ in sides:
                    rounds[side].append(summary(round_totals[side]))
                loads.append(os.getloadavg()[0])
            for side, _ in sides:
                results[side][label] = {
                    "head": summary(heads[side]),
                    "total": summary(totals[side]),
                    "rounds": rounds[side],
                    "first_head_s": firsts[side][0],
                    "first_total_s": firsts[side][1],
                    "bytes": size[side],
                }
        memory = {side: proc_memory_mb(children[side].pid) for side, _ in sides}
        gc_pauses = {side: _gc_pauses(infos[side]["port"]) for side, _ in sides}
    for side, _ in sides:
        info = infos[side]
        print(
            f"   {side}: {args.servers} reports recorded in {info['build_s']:.1f} s; RSS "
            f"{info['rss_before_mb']:.0f} MB after imports, {info['rss_built_mb']:.0f} MB "
            "with them"
        )
    print(
        "   GET /metrics           whole answer: p50 / p99   first byte: p50 / p99"
        "   first GET: first byte / whole   body"
    )
    for side, _ in sides:
        for label, res in results[side].items():
            head, total = res["head"], res["total"]
            print(
                f"   {side:7} {label:12}   {ms(total['p50'], 1):>9} / {ms(total['p99'], 1):>9}"
                f"   {ms(head['p50'], 1):>9} / {ms(head['p99'], 1):>9}"
                f"   {ms(res['first_head_s'], 0):>9} / {ms(res['first_total_s'], 0):>7}"
                f"     {res['bytes'] / 1e6:.1f} MB"
            )
    for side, _ in sides:
        for label, res in results[side].items():
            spread = ", ".join(f"{ms(r['p50'], 0)} / {ms(r['p99'], 0)}" for r in res["rounds"])
            print(
                f"   {side:7} {label:12}   each round of {args.requests} GETs, p50 / p99: {spread}"
            )
    for side, _ in sides:
        pauses = gc_pauses[side]
        full = [p for g, p in pauses if g == 2]
        longest = max((p for _, p in pauses), default=0.0)
        print(
            f"   {side}: the server's garbage collections while scraped: {len(pauses)}, of "
            f"them {len(full)} full; longest {ms(longest, 1)}; RSS after rendering "
            f"{memory[side]['VmRSS']:.0f} MB, peak {memory[side]['VmHWM']:.0f} MB"
        )
    print(f"   load average (1 min) during the run: {min(loads):.2f}-{max(loads):.2f}")
    print("   (targets: whole answer p99 <= 100 ms, the first GET included; RSS <= 200 MB)")
    for side, _ in sides:
        out[side] = {
            "build": infos[side],
            "render": results[side],
            "gc_pauses": gc_pauses[side],
            "rss_after_mb": memory[side]["VmRSS"],
            "peak_rss_mb": memory[side]["VmHWM"],
        }
    out["load"] = loads
    # The figures of this checkout's monitor, where they always were.
    out.update({k: v for k, v in out["ours"].items() if k != "build"})
    out["build"] = infos["ours"]
    return out
