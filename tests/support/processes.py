"""Child processes of the tests: ``jitsi-monitor serve``, Prometheus and
whatever else a system test starts, and reading their output."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.sites import free_port


async def read_until(stream: asyncio.StreamReader | None, done: Callable[[str], bool]) -> str:
    """Lines of a child's output until ``done`` holds for all read so far."""
    assert stream is not None
    text = ""
    while not done(text):
        line = await asyncio.wait_for(stream.readline(), 30)
        assert line, "the process ended before printing what was expected"
        text += line.decode()
    return text


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    base: str
    config: Path
    log: str = ""  # what serve wrote to stderr up to its listening line


async def start_serve(
    config: Path,
    started: list[Served],
    *options: str,
    preexec_fn: Callable[[], object] | None = None,
) -> Served:
    """``jitsi-monitor serve`` on a free loopback port, once it listens; the
    ``serve`` fixture (``started``) kills it after the test. Its stderr stays
    a pipe for the test to read on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "serve",
        "--port",
        "0",
        *options,
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
    )
    served = Served(proc, "", config)
    started.append(served)
    served.log = await read_until(proc.stderr, lambda text: _LISTENING.search(text) is not None)
    match = _LISTENING.search(served.log)
    assert match is not None
    served.base = match.group(1)
    return served


_LISTENING = re.compile(r"metrics on (http://[\d.]+:\d+)/metrics")


@asynccontextmanager
async def lab_process(
    *args: str, ready: Callable[[str], bool]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``jitsi-monitor lab ARGS`` in a child process, with the config it printed
    once ``ready`` holds for it; stopped at the end with SIGTERM, which it must
    obey with status 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "lab",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc, await read_until(proc.stdout, ready)
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 30) -> None:
    """Wait until ``url`` answers 200 (a child server has started)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            assert proc.returncode is None, "the server exited"
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert loop.time() < end, f"{url} never answered"
            await asyncio.sleep(0.2)


async def start(
    started: list[asyncio.subprocess.Process], *args: str | Path
) -> asyncio.subprocess.Process:
    """Start a child process with its output discarded; the fixture stops it."""
    proc = await asyncio.create_subprocess_exec(
        *(str(a) for a in args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    started.append(proc)
    return proc


async def start_prometheus(
    started: list[asyncio.subprocess.Process], workdir: Path, config: dict[str, object]
) -> str:
    """A real Prometheus (Debian's) on a loopback port; its base URL."""
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps(config))
    port = free_port()
    proc = await start(
        started,
        "prometheus",
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    )
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/-/ready", proc)
    return base
