"""The commands as a user runs them (a child process), and what ``serve``
exports on /metrics, checked with promtool."""

from __future__ import annotations

import asyncio
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp


@dataclass
class Result:
    code: int
    out: str
    err: str


async def run_cli(*args: str, timeout: float = 60, stdin: str | None = None) -> Result:
    """Run ``jitsi-monitor ARGS`` in a child process while this loop keeps
    serving, with ``stdin`` (if given) on its standard input."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdin=None if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    data = None if stdin is None else stdin.encode()
    out, err = await asyncio.wait_for(proc.communicate(data), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def write_config(tmp_path: Path, servers: dict[str, str], extra: str = "") -> Path:
    lines = [extra, "servers:"]
    for name, url in servers.items():
        lines += [f"  - name: {name}", f"    url: {url}", "    timeout: 2s"]
        lines += ["    signalling: {enabled: false}"]
    path = tmp_path / "servers.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def scrape(base: str, accept: str = "") -> tuple[str, str]:
    async with aiohttp.ClientSession() as session:
        headers = {"Accept": accept} if accept else {}
        async with session.get(f"{base}/metrics", headers=headers) as resp:
            assert resp.status == 200
            return await resp.text(), resp.headers["Content-Type"]


async def wait_for_metric(base: str, needle: str, timeout: float = 20) -> str:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        text, _ = await scrape(base)
        if needle in text:
            return text
        assert loop.time() < end, f"{needle!r} never appeared in /metrics:\n{text}"
        await asyncio.sleep(0.2)


async def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/check installs it (Debian package prometheus)"
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0, out.decode()
