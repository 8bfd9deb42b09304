"""Benchmark 2: sustained scale, N servers on 60 s intervals with the web ladder.

The monitor is serve's ``monitor.service.Service`` itself, run in a worker
process as the serve command runs it (config loader, Runner, Scheduler, the
app, the event loop it picks, its logging), with signalling turned off,
against nginx in another process. Every server has its own path and its own
config.js. To see every ladder's schedule lag, the worker hands the Service
a ``State`` subclass (its ``make_state``) whose ``schedule_lag`` attribute
keeps each value the Scheduler writes (the same figure as
``jitsi_monitor_schedule_lag_seconds``: due time to start, waiting for a
free slot included); nothing in monitor/ is changed. Samples
count once the warm-up is over (due times after it), so the burst of first
probes at start is left out. A scraper in this process GETs /metrics on the
usual interval meanwhile, as Prometheus would.

With ``--shards K`` the fleet is split over K serve processes
(``serve --shard i/K``, one config).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import logging
import math
import os
import signal
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    Child,
    free_port,
    ms,
    percentile,
    proc_memory_mb,
    spawn_bench,
    step,
    summary,
    wait_port,
)
from bench.targets import Certs, Nginx
from monitor.checks.signalling.xmpp import XmppResult
from monitor.checks.web.probe import WebResult
from monitor.model import ServerReport
from monitor.selector import Decision
from monitor.state import State

__all__ = ["RecordingState", "add_arguments", "fleet_yaml", "run", "run_monitor", "worker"]

# started, finished, duration, up, HTTP processing, ping RTT, first failure, server
Row = tuple[float, float, float, bool, float, float, str, str]


class RecordingState(State):
    """A State that also keeps every schedule-lag value and facts of every report.

    The Scheduler writes ``schedule_lag`` when a ladder starts; a property
    here records each write (with the due time it implies) instead of only
    the last. Made inside serve's running loop, it also starts a ticker that
    shows how late the loop runs a 50 ms sleep.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lags: list[tuple[float, float]] = []  # (due, lag), Unix time
        self.rows: list[Row] = []
        self.loop_lag: list[tuple[float, float]] = []
        self.gc_pauses: list[tuple[float, int, float]] = []  # (when, generation, seconds)
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)
        self.t0 = time.time()
        self._lag = 0.0
        self._recording = False
        super().__init__(*args, **kwargs)
        self._recording = True
        with contextlib.suppress(RuntimeError):  # no running loop: no ticker
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_started
            self.gc_pauses.append((time.time(), info["generation"], pause))

    async def _tick(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            self.loop_lag.append((time.time(), time.perf_counter() - t - 0.05))

    @property
    def schedule_lag(self) -> float:
        return self._lag

    @schedule_lag.setter
    def schedule_lag(self, value: float) -> None:
        self._lag = value
        if self._recording:
            self.lags.append((time.time() - value, value))

    def record(self, report: ServerReport) -> list[Decision]:
        failure = report.first_failure
        web, xmpp = report.result(WebResult), report.result(XmppResult)
        self.rows.append(
            (
                report.started_at,
                report.finished_at,
                report.duration,
                report.up,
                (web.phase_seconds("processing") if web else None) or math.nan,
                xmpp.ping_rtt if xmpp and xmpp.ping_rtt is not None else math.nan,
                f"{failure.check.value}: {failure.reason.value}: {failure.detail}"
                if failure
                else "",
                report.server,
            )
        )
        return super().record(report)


def fleet_yaml(
    urls: list[tuple[str, str]],
    ca_file: Path,
    interval: float,
    signalling: bool,
    concurrency: int,
    timeout: float = 15.0,
) -> str:
    """A servers.yaml for (name, url) pairs."""
    lines = [
        "location: bench",
        f"concurrency: {concurrency}",
        'state_file: ""',
        "defaults:",
        f"  interval: {interval:g}s",
        f"  timeout: {min(timeout, interval):g}s",
        f"  tls: {{ca_file: '{ca_file}'}}",
        f"  signalling: {{enabled: {'true' if signalling else 'false'}}}",
        "servers:",
    ]
    lines += [f"  - {{name: {name}, url: '{url}'}}" for name, url in urls]
    return "\n".join(lines) + "\n"


# -- the worker: serve, recorded ----------------------------------------------------


def worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--shard", default=None, help="i/n")


class _Counter(logging.Handler):
    """Counts warnings by their message template (e.g. APScheduler's skipped runs)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []  # the first few errors, with their tracebacks

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}: {str(record.msg)[:70]}"] += 1
        if record.levelno >= logging.ERROR and len(self.errors) < 3:
            self.errors.append(logging.Formatter().format(record)[-2000:])


def worker(args: argparse.Namespace) -> None:
    """serve's Service for ``duration`` seconds; what it did goes to ``out``."""
    from monitor import loop as event_loop
    from monitor.cli.common import setup_logging
    from monitor.config import load_config, parse_shard
    from monitor.service import Service

    # serve picks uvloop when it is installed, unless told otherwise.
    os.environ["JITSI_MONITOR_LOOP"] = args.loop
    # As the CLI sets logging up, plus a handler that counts warnings and
    # keeps the first errors.
    setup_logging("info")
    counter = _Counter()
    logging.getLogger().addHandler(counter)
    cpu: list[tuple[float, float]] = []
    rss: list[tuple[float, float]] = []
    stop = threading.Event()
    ended: list[float] = []

    def sample() -> None:
        started = time.monotonic()
        while not stop.wait(1.0):
            cpu.append((time.time(), time.process_time()))
            if len(cpu) % 5 == 1:
                rss.append((time.time(), proc_memory_mb()["VmRSS"]))
            if time.monotonic() - started >= args.duration and not ended:
                ended.append(time.time())
                cpu.append((ended[0], time.process_time()))
                memory.update(proc_memory_mb())
                os.kill(os.getpid(), signal.SIGTERM)  # serve stops cleanly on SIGTERM

    memory: dict[str, float] = {}
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    service = Service(
        args.config,
        load_config(args.config),
        host="127.0.0.1",
        port=args.port,
        shard=parse_shard(args.shard) if args.shard else None,
        make_state=RecordingState,
    )
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(service.run())
    stop.set()
    state = service.state
    assert isinstance(state, RecordingState)
    args.out.write_text(
        json.dumps(
            {
                "t0": state.t0,
                "end": ended[0] if ended else time.time(),
                "servers": len(state.targets),
                "lags": state.lags,
                "rows": state.rows,
                "loop_lag": state.loop_lag,
                "gc": state.gc_pauses,
                "cpu": cpu,
                "rss": rss,
                "memory": memory or proc_memory_mb(),
                "warnings": dict(counter.counts),
                "errors": counter.errors,
            }
        )
    )


def run_monitor(
    config: Path,
    duration: float,
    loop: str,
    scrape: float,
    workdir: Path,
    shards: int = 1,
    env: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[float]]:
    """Run serve (``shards`` processes); scrape /metrics every ``scrape`` s (0: never).

    Returns what each worker recorded and the scrape times (seconds each).
    """
    children: list[tuple[Child, Path, Path, int]] = []
    scrapes: list[float] = []
    stop = threading.Event()
    try:
        for index in range(1, shards + 1):
            out = workdir / f"monitor-{index}.json"
            log = workdir / f"monitor-{index}.log"
            port = free_port()
            cmd = ["_monitor", "--config", str(config), "--duration", str(duration)]
            cmd += ["--out", str(out), "--port", str(port), "--loop", loop]
            if shards > 1:
                cmd += ["--shard", f"{index}/{shards}"]
            with log.open("w") as err:
                child = spawn_bench(cmd, stderr=err, env=env)
            children.append((child, out, log, port))
        for child, _, log, port in children:
            try:
                wait_port(port, child.proc, timeout=120)
            except RuntimeError as exc:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"serve did not start; see {log}:\n{tail}") from exc

        def scraper(port: int) -> None:
            url = f"http://127.0.0.1:{port}/metrics"
            while not stop.wait(scrape):
                t = time.perf_counter()
                try:
                    with urllib.request.urlopen(url, timeout=60) as resp:
                        resp.read()
                except OSError:
                    return  # the worker has stopped serving: its run is over
                scrapes.append(time.perf_counter() - t)

        threads = [threading.Thread(target=scraper, args=(c[3],), daemon=True) for c in children]
        if scrape > 0:
            for thread in threads:
                thread.start()
        results = []
        for child, out, log, _ in children:
            child.proc.wait(timeout=duration + 600)
            if child.proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"serve failed; see {log}:\n{log.read_text()[-3000:]}")
            results.append(json.loads(out.read_text()))
    finally:
        stop.set()
        for child, *_ in children:
            child.stop()
    return results, scrapes


# -- the benchmark ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--servers", default="2500,5000,10000,15000", help="fleet sizes to try, comma-separated"
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds per fleet size")
    parser.add_argument(
        "--warmup", type=float, default=180.0, help="seconds left out at start (the restart burst)"
    )
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=64, help="the config's concurrency")
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))
    parser.add_argument("--shards", type=int, default=1, help="serve processes (--shard i/K)")
    parser.add_argument(
        "--scrape", type=float, default=15.0, help="scrape /metrics every S seconds (0: never)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="host name in the servers' URLs")


def analyse(results: list[dict[str, Any]], warmup: float, scrapes: list[float]) -> dict[str, Any]:
    """Figures of one run (all its shards), over the window after the warm-up."""
    t0 = min(r["t0"] for r in results)
    end = max(r["end"] for r in results)
    start = t0 + warmup
    window = end - start
    lags = [lag for r in results for due, lag in r["lags"] if due >= start]
    # After a start, the first round's burst leaves a backlog: when did lag last exceed 1 s?
    late = [due - t0 for r in results for due, lag in r["lags"] if lag > 1.0]
    rows = [row for r in results for row in r["rows"] if row[1] >= start]
    cpu_share = 0.0
    for r in results:
        cpu = [(t, c) for t, c in r["cpu"] if t >= start]
        if len(cpu) > 1:
            cpu_share += (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0])
    failures = collections.Counter(row[6].split(":", 2)[1].strip() for row in rows if not row[3])
    servers = sum(r["servers"] for r in results)
    finished = sorted(row[1] for r in results for row in r["rows"])
    first_round = finished[servers - 1] - t0 if len(finished) >= servers else math.nan
    loop_lag = [lag for r in results for t, lag in r["loop_lag"] if t >= start]
    gc_pauses = [p for r in results for t, _, p in r["gc"] if t >= start]
    gc_full = [p for r in results for t, g, p in r["gc"] if t >= start and g == 2]
    warnings: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    for r in results:
        warnings.update(r["warnings"])
        errors += r.get("errors", [])
    return {
        "servers": servers,
        "lag": summary(lags),
        "ladders_per_s": len(rows) / window if window > 0 else math.nan,
        "failed": len([row for row in rows if not row[3]]),
        "failures": dict(failures.most_common(3)),
        "ladder_p50": percentile([row[2] for row in rows], 50),
        "ladder_p99": percentile([row[2] for row in rows], 99),
        "cpu_percent": cpu_share * 100,
        "rss_mb": sum(r["memory"].get("VmRSS", math.nan) for r in results),
        "peak_rss_mb": sum(r["memory"].get("VmHWM", math.nan) for r in results),
        "first_round_s": first_round,
        "lag_over_1s_until_s": max(late, default=0.0),
        "loop_lag": summary(loop_lag),
        "gc_pause": summary(gc_pauses),
        "gc_full_collections": len(gc_full),
        "gc_full_max": max(gc_full, default=math.nan),
        "scrape": summary(scrapes),
        "warnings": dict(warnings),
        "errors": errors,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(x) for x in str(args.servers).split(",") if x]
    runs: list[dict[str, Any]] = []
    scrape = f"every {args.scrape:g} s" if args.scrape else "off"
    with (
        step(
            f"Scale: web ladder every {args.interval:g} s, {args.duration:g} s per size "
            f"(first {args.warmup:g} s left out), loop {args.loop}, {args.shards} serve "
            f"process(es), /metrics scraped {scrape}"
        ),
        tempfile.TemporaryDirectory(prefix="jitsi-bench-") as tmp,
    ):
        work = Path(tmp)
        certs = Certs(work)
        with Nginx(certs) as nginx:
            print(
                "   servers  lag p50    lag p99    lag max    ladders/s     failed  CPU    RSS"
                "      1st round  lag>1s until  loop-lag max  scrape p50/max"
            )
            for n in sizes:
                names = [f"srv-{i:05d}" for i in range(n)]
                config = work / f"servers-{n}.yaml"
                config.write_text(
                    fleet_yaml(
                        [(name, nginx.url(args.host, name)) for name in names],
                        certs.ca_file,
                        args.interval,
                        signalling=False,
                        concurrency=args.concurrency,
                    )
                )
                results, scrapes = run_monitor(
                    config, args.duration, args.loop, args.scrape, work, args.shards
                )
                fig = analyse(results, args.warmup, scrapes)
                fig["expected_per_s"] = n / args.interval
                runs.append(fig)
                lag = fig["lag"]
                print(
                    f"   {n:7d}  {ms(lag['p50'], 1):>9}  {ms(lag['p99'], 1):>9}  "
                    f"{ms(lag['max'], 1):>9}  {fig['ladders_per_s']:5.1f}/{n / args.interval:<6.1f}"
                    f" {fig['failed']:6d}  {fig['cpu_percent']:3.0f}%  "
                    f"{fig['rss_mb']:4.0f} MB  {fig['first_round_s']:6.1f} s  "
                    f"{fig['lag_over_1s_until_s']:8.0f} s  "
                    f"{ms(fig['loop_lag']['max'], 1):>10}  "
                    f"{ms(fig['scrape']['p50'], 0)}/{ms(fig['scrape']['max'], 0)}",
                    flush=True,
                )
                print(
                    f"            GC: {fig['gc_pause']['count']:.0f} collections after the "
                    f"warm-up, {fig['gc_full_collections']} full, longest pause "
                    f"{ms(fig['gc_pause']['max'], 1)}; ladder p50/p99 {ms(fig['ladder_p50'], 1)}/"
                    f"{ms(fig['ladder_p99'], 1)}"
                )
                if fig["failures"] or fig["warnings"]:
                    print(f"            failures {fig['failures']} warnings {fig['warnings']}")
                for error in fig["errors"][:1]:
                    print("            the first error:\n" + error)
    passing = [r["servers"] for r in runs if r["lag"]["p99"] < 1.0]
    best = max(passing) if passing else 0
    print(f"   largest N with lag p99 < 1 s: {best or 'none'} (target 15000)")
    return {
        "runs": runs,
        "largest_n_p99_under_1s": best,
        "loop": args.loop,
        "shards": args.shards,
        "scrape": args.scrape,
    }
