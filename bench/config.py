"""Benchmark 5: loading a 10,000-server config, and the event-loop stall of a reload.

Load: ``load_config`` (YAML, schema, cross checks, token keys) in this
process, the first run and the best of a few; target 1 s. Reload: ``serve``
runs with the config (servers on a closed loopback port, an hour apart, so
that probing is quiet once every server's first ladder is done); this
process GETs ``/healthz`` every few milliseconds over one kept-alive
connection, changes the config (one more server each time) and sends
SIGHUP. The stall is the longest the loop was late to wake a 2 ms sleep
while the reload ran (a ticker on the loop of the service, which runs in
the worker process as serve runs it); how much later ``/healthz``
answered than before is shown beside it (each answer takes several turns
of the loop). Target: under 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import free_port, ms, proc_memory_mb, spawn_bench, step, wait_port

__all__ = ["add_arguments", "run", "worker", "worker_arguments", "write_config"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--servers", type=int, default=10000)
    parser.add_argument("--loads", type=int, default=3, help="timed loads in this process")
    parser.add_argument("--reloads", type=int, default=3, help="SIGHUPs to time")


def worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)


def worker(args: argparse.Namespace) -> None:
    """``jitsi-monitor serve``, with a 2 ms ticker on its loop; the lags go to ``out``.

    The service runs in this process as the serve command runs it (its
    logging, its loop, SIGHUP and SIGTERM), with the ticker as one more task
    on that loop; nothing in monitor/ changes.
    """
    import asyncio

    from monitor import loop as event_loop
    from monitor.cli.common import setup_logging
    from monitor.config import load_config
    from monitor.service import Service

    lags: list[tuple[float, float]] = []
    pauses: list[tuple[float, int, float]] = []
    began = [0.0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((time.monotonic(), info["generation"], time.perf_counter() - began[0]))

    gc.callbacks.append(collected)

    async def tick() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append((time.monotonic(), time.perf_counter() - started - 0.002))

    async def main(service: Service) -> None:
        ticker = asyncio.create_task(tick())
        try:
            await service.run()
        finally:
            ticker.cancel()

    setup_logging("info")
    service = Service(args.config, load_config(args.config), host="127.0.0.1", port=args.port)
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(main(service))
    args.out.write_text(json.dumps({"lags": lags, "gc": pauses}))


def write_config(path: Path, servers: int, port: int, extra: int = 0) -> None:
    """``servers`` servers (+``extra``) on a closed port, pools of three, labels."""
    lines = [
        "location: bench",
        "defaults: {interval: 1h, timeout: 10s, signalling: {enabled: false}}",
        "state_file: ''",
        "servers:",
    ]
    for i in range(servers + extra):
        lines += [
            f"  - name: meet-{i:05d}",
            f"    url: http://127.0.0.1:{port}/s{i:05d}/",
            f"    labels: {{region: r{i % 7}, team: t{i % 4}}}",
        ]
        if i % 10 == 0:
            lines.append("    kind: jaas")
    lines.append("pools:")
    for p in range(servers // 3):
        members = ", ".join(f"meet-{p * 3 + k:05d}" for k in range(3))
        lines.append(f"  - {{name: pool-{p}, servers: [{members}]}}")
    path.write_text("\n".join(lines) + "\n")


def _load_times(path: Path, count: int) -> list[float]:
    from monitor.config import load_config

    times = []
    for _ in range(count):
        started = time.perf_counter()
        load_config(path)
        times.append(time.perf_counter() - started)
    return times


class _Poller(threading.Thread):
    """GET /healthz again and again; keeps (when, seconds) of each answer."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                self.samples.append((started, time.monotonic() - started))
                time.sleep(0.002)
        finally:
            conn.close()


def _reload_stalls(path: Path, servers: int, reloads: int) -> dict[str, Any]:
    port = free_port()
    closed = free_port()
    write_config(path, servers, closed)
    out = path.with_suffix(".lags.json")
    args = ["_config-serve", "--config", str(path), "--port", str(port), "--out", str(out)]
    lines: list[str] = []
    windows: list[tuple[float, float]] = []
    answers: list[float] = []
    reads: list[float] = []
    swaps: list[float] = []
    with spawn_bench(args, stderr=subprocess.PIPE) as child:
        reader = threading.Thread(target=_read_lines, args=(child, lines), daemon=True)
        reader.start()
        wait_port(port, child.proc, timeout=120)
        # every server's first ladder runs within the first round's window
        # (monitor.scheduler.first_round_window: a minute for 10,000 servers);
        # the reloads are timed once it is over
        _wait_probed(port, servers, child)
        time.sleep(2.0)
        poller = _Poller(port)
        poller.start()
        time.sleep(1.0)
        for n in range(1, reloads + 1):
            before = [s for _, s in poller.samples[-200:]]
            done_before = sum("config reloaded" in line for line in lines)
            write_config(path, servers, closed, extra=n)  # one more server each time
            sent = time.monotonic()
            child.proc.send_signal(signal.SIGHUP)
            end = sent + 120
            while sum("config reloaded" in line for line in lines) == done_before:
                if time.monotonic() > end or child.proc.poll() is not None:
                    raise RuntimeError("serve did not reload:\n" + "".join(lines[-20:]))
                time.sleep(0.01)
            time.sleep(0.3)  # what follows the swap counts too
            windows.append((sent, time.monotonic()))
            during = [s for t, s in poller.samples if t >= sent - 0.01]
            answers.append(max(during) - statistics.median(before))
            reads.append(_read_seconds(lines))
            swaps.append(_swap_seconds(lines))
        poller.stop.set()
        poller.join(5)
        rss = proc_memory_mb(child.pid)
        child.stop()
    recorded = json.loads(out.read_text())
    lags, pauses = recorded["lags"], recorded["gc"]
    stalls = [max((lag for t, lag in lags if a <= t <= b), default=0.0) for a, b in windows]
    collections = [max((p for t, _, p in pauses if a <= t <= b), default=0.0) for a, b in windows]
    return {
        "stall_s": max(stalls),
        "stalls_s": stalls,
        "answer_delay_s": answers,
        "gc_pause_s": collections,
        "read_s": reads,
        "swap_s": swaps,
        "rss_mb": rss.get("VmRSS", float("nan")),
        "peak_rss_mb": rss.get("VmHWM", float("nan")),
    }


def _wait_probed(port: int, servers: int, child: Any, timeout: float = 300) -> None:
    """Until ``/healthz`` says every server has a result."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if child.proc.poll() is not None:
            raise RuntimeError("serve exited")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/healthz")
            if json.loads(conn.getresponse().read())["probed"] >= servers:
                return
        finally:
            conn.close()
        time.sleep(0.5)
    raise RuntimeError(f"not every server was probed within {timeout} s")


def _read_lines(child: Any, lines: list[str]) -> None:
    stream = child.proc.stderr
    assert stream is not None
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            lines.append(line)


def _swap_seconds(lines: list[str]) -> float:
    for line in reversed(lines):
        found = re.search(r"config reloaded: .*swapped in ([\d.]+) ms", line)
        if found:
            return float(found.group(1)) / 1000
    return float("nan")


def _read_seconds(lines: list[str]) -> float:
    for line in reversed(lines):
        found = re.search(r"config reloaded: .*read in ([\d.]+)s", line)
        if found:
            return float(found.group(1))
    return float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"servers": args.servers}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "servers.yaml"
        with step(f"config: load {args.servers} servers ({args.loads} times, this process)"):
            write_config(path, args.servers, 9)
            size = path.stat().st_size
            times = _load_times(path, args.loads)
            out.update(load_first_s=times[0], load_best_s=min(times), bytes=size)
            print(
                f"   {size / 1e6:.1f} MB: first {times[0]:.3f} s, best {min(times):.3f} s "
                "(target: 1 s or less)",
                flush=True,
            )
        with step(f"config: SIGHUP reload of serve with {args.servers} servers ({args.reloads}x)"):
            reload = _reload_stalls(path, args.servers, args.reloads)
            out.update(reload)
            print(
                f"   event-loop stall: {ms(reload['stall_s'], 1)} at most "
                f"({', '.join(ms(s, 1) for s in reload['stalls_s'])}; target: under 50 ms); "
                f"read in a worker thread in {', '.join(f'{r:.2f} s' for r in reload['read_s'])}, "
                f"swapped in on the loop in {', '.join(ms(r, 1) for r in reload['swap_s'])}; "
                f"longest garbage collection {ms(max(reload['gc_pause_s']), 1)}; "
                f"/healthz answered at most {ms(max(reload['answer_delay_s']), 1)} later "
                "than before; "
                f"serve's RSS {reload['rss_mb']:.0f} MiB (peak {reload['peak_rss_mb']:.0f} MiB)",
                flush=True,
            )
    return out
