"""Helpers shared by the benchmarks: statistics, process CPU and memory, children."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ROOT",
    "Child",
    "free_port",
    "have_uvloop",
    "machine_info",
    "ms",
    "percentile",
    "proc_cpu_seconds",
    "proc_memory_mb",
    "run_bench_json",
    "run_loop",
    "spawn_bench",
    "step",
    "summary",
    "wait_port",
]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[min(rank, len(ordered) - 1)]


def summary(values: Sequence[float]) -> dict[str, float]:
    """count, p50, p99, max (NaN when empty)."""
    return {
        "count": float(len(values)),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def ms(seconds: float, digits: int = 2) -> str:
    """Seconds as milliseconds for a table."""
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.{digits}f} ms"


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU of a whole process (all its threads), from /proc."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    # Fields after the command: state is field 3, utime 14, stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_memory_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 15.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.settimeout(0.5)
            sock.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run_loop(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``main`` on a fresh event loop: ``asyncio``, ``uvloop`` (when installed) or
    ``default``: the one the monitor picks itself (``monitor.loop``)."""
    if loop == "default":
        from monitor.loop import run

        return run(main)
    if loop == "uvloop" and have_uvloop():
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    with asyncio.Runner() as runner:
        return runner.run(main)


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the benchmark process dies (Linux)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A child process that is stopped (SIGTERM, then SIGKILL) on exit.

    It also gets SIGTERM if the benchmark process dies without stopping it.
    """

    def __init__(self, args: Sequence[str], **kwargs: Any) -> None:
        self.args = list(args)
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            self.args, text=True, preexec_fn=_die_with_parent, **kwargs
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None:
                stream.close()


def spawn_bench(args: Sequence[str], **kwargs: Any) -> Child:
    """``python -m bench ARGS`` as a child (a worker of one of the benchmarks)."""
    return Child([sys.executable, "-m", "bench", *args], cwd=ROOT, **kwargs)


def run_bench_json(
    args: Sequence[str], timeout: float | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m bench ARGS`` to the end; its last stdout line is a JSON object."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench worker {args[0]} failed ({done.returncode}):\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _first_line(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "monitor"])
    if dirty not in ("unknown", "not installed"):
        commit += " (monitor/ has uncommitted changes)"
    return {
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "nproc": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _first_line([nginx, "-v"]),
        "blackbox_exporter": _first_line(["prometheus-blackbox-exporter", "--version"]),
        "load": Path("/proc/loadavg").read_text().strip(),
    }


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """Print a heading and how long the step took."""
    print(f"\n== {title}", flush=True)
    t0 = time.monotonic()
    yield
    print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
