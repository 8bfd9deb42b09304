"""Media helpers: ladders through a Runner, the reason and detail of one
check, a TURN service to allocate on, and the STUN magic cookie."""

from __future__ import annotations

from monitor.checks.media.result import MediaService
from monitor.config import MonitorConfig
from monitor.model import Check, Reason, ServerReport
from monitor.runner import Runner


async def rounds(cfg: MonitorConfig, runners: list[Runner], n: int = 1) -> list[ServerReport]:
    runner = Runner(cfg)
    runners.append(runner)
    return [await runner.run_now(cfg.targets()[0]) for _ in range(n)]


def reason(report: ServerReport, check: Check) -> Reason:
    result = report.check(check)
    assert result is not None, f"no {check.value} result: {report.checks}"
    return result.reason


def detail(report: ServerReport, check: Check) -> str:
    result = report.check(check)
    assert result is not None
    return result.detail


COOKIE = b"\x21\x12\xa4\x42"


def turn(port: int, transport: str = "udp") -> MediaService:
    return MediaService("turn", "127.0.0.1", port, transport, "extdisco", credentials=True)
