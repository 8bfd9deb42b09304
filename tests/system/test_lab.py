"""The lab command (a child process): it prints a config the monitor uses,
every fault works from the command line, and SIGUSR1 takes lab-1 down and
brings it back."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp

from monitor.config import parse_config
from tests.support.cli import run_cli
from tests.support.lab import FAULT_CASES
from tests.support.processes import lab_process


async def test_lab_command_prints_a_config_the_monitor_uses() -> None:
    async with lab_process(
        "--servers", "2", "--fault", "2=focus_down", ready=lambda t: t.count("url:") >= 2
    ) as (_, text):
        cfg = parse_config(text)
        assert [t.name for t in cfg.targets()] == ["lab-1", "lab-2"]
        check = await run_cli("check", "--json", "/dev/stdin", stdin=text)
        assert check.code == 1
        assert '"reason": "focus_unavailable"' in check.out


async def test_every_fault_works_from_the_command_line() -> None:
    """`lab --fault N=FAULT` injects each fault from the start (refuse: the port is closed)."""
    faults = [f"{i}={fault}" for i, (fault, _) in enumerate(FAULT_CASES, 1)]
    async with lab_process(
        "--tls",
        "--servers",
        str(len(FAULT_CASES)),
        *(arg for fault in faults for arg in ("--fault", fault)),
        ready=lambda t: t.count("ca_file:") >= len(FAULT_CASES),
    ) as (_, text):
        text = text.replace("timeout: 5s", "timeout: 1.5s")
        check = await run_cli("check", "--json", "/dev/stdin", stdin=text)
        servers = json.loads(check.out)["servers"]
        for (fault, expected), server in zip(FAULT_CASES, servers, strict=True):
            got = {c["check"]: c["reason"] for c in server["checks"]}
            assert {k: got.get(k) for k in expected} == expected, fault
            assert server["verdict"] == "down", fault


async def test_sigusr1_takes_lab_1_down_and_brings_it_back() -> None:
    """What the walk-through of docs/status-pages.md ("Try it with the lab") does to the lab."""
    async with lab_process("--servers", "2", ready=lambda t: t.count("url:") >= 2) as (
        lab_proc,
        text,
    ):
        url = parse_config(text).targets()[0].url

        async def answers() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(url) as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        async def until(want: bool) -> None:
            for _ in range(100):
                if await answers() is want:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"lab-1 never {'answered' if want else 'went down'}")

        await until(True)
        lab_proc.send_signal(signal.SIGUSR1)
        await until(False)
        lab_proc.send_signal(signal.SIGUSR1)
        await until(True)
