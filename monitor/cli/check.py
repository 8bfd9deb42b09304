"""``jitsi-monitor check``: probe every server once and print a table (or JSON)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from monitor import escape
from monitor import loop as event_loop
from monitor.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_UNHEALTHY,
    config_arg,
    load,
    shard_option,
)
from monitor.config import MonitorConfig, Shard, Target
from monitor.decisions import Decisions
from monitor.ladder import LADDER, Check
from monitor.model import Reason, ServerReport
from monitor.runner import Runner
from monitor.state import State
from monitor.views import cert_days_left, pool_dict, report_dict, verdict

__all__ = ["check"]


async def _check_all(cfg: MonitorConfig, targets: list[Target]) -> list[ServerReport]:
    runner = Runner(cfg)
    try:
        return list(await asyncio.gather(*(runner.run(t) for t in targets)))
    finally:
        await runner.close()


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _signalling(report: ServerReport) -> str:
    """The signalling verdict in a few words: the ping RTT, or what failed."""
    checks = [report.check(c) for c in LADDER.checks("signalling")]
    run = [c for c in checks if c is not None]
    if not run:
        return "off"
    failed = next((c for c in run if not c.success), None)
    if failed is not None and failed.reason is Reason.SKIPPED:
        return "skipped"
    if failed is not None:
        return f"[red]{escape.term(f'{failed.check.value}: {failed.reason.value}')}[/]"
    return f"[green]ok[/] {_ms(report.ping_rtt)}"


def _jwt(report: ServerReport) -> str:
    """The token verdicts in plain words."""
    valid = report.check(Check.JWT_VALID)
    if valid is None:
        return "-"
    if not valid.success:
        shown = escape.term(valid.reason.value)
        return f"[red]token {shown}[/]" if valid.reason is not Reason.SKIPPED else "-"
    words = []
    enforced = report.check(Check.JWT_ENFORCED)
    if enforced is not None and enforced.reason is Reason.JWT_NOT_ENFORCED:
        words.append("[red]NOT ENFORCED[/]")
    elif enforced is not None and enforced.reason is Reason.JWT_OPTIONAL:
        words.append("[red]TOKEN OPTIONAL[/]")
    elif enforced is not None and not enforced.success:
        words.append(escape.term(f"enforcement {enforced.reason.value}"))
    moderation = report.check(Check.MODERATION)
    if moderation is not None and moderation.reason is Reason.MODERATION_CLAIM_IGNORED:
        words.append("[red]moderator claim ignored[/]")
    elif moderation is not None and not moderation.success:
        words.append(escape.term(moderation.reason.value))
    if words:
        return "; ".join(words)
    guests = enforced is not None and "guests are allowed" in enforced.detail
    return "[green]ok[/] (guests allowed)" if guests else "[green]ok[/]"


def _media(report: ServerReport) -> str:
    """STUN's slowest round trip and TURN's allocation per transport, or what failed."""
    stun, turn, media = report.check(Check.STUN), report.check(Check.TURN), report.media
    if stun is None or turn is None:
        return "off"
    if Reason.SKIPPED in (stun.reason, turn.reason) or media is None:
        return "skipped"
    words = []
    rtts = [p.seconds for p in media.probes if p.service.type == "stun" and p.seconds]
    if stun.success:
        words.append(f"[green]STUN[/] {_ms(max(rtts))}" if rtts else "[green]STUN[/]")
    else:
        words.append(f"[red]STUN {escape.term(stun.reason.value)}[/]")
    if not turn.success:
        words.append(f"[red]TURN {escape.term(turn.reason.value)}[/]")
    else:
        times = [
            f"{'tls' if p.service.type == 'turns' else p.service.transport} {_ms(p.seconds)}"
            for p in media.probes
            if p.service.type != "stun"
        ]
        words.append(f"[green]TURN[/] {', '.join(times)}")
    return "; ".join(words)


def _pool_line(state: State, name: str) -> str:
    pool = pool_dict(state, name)
    if pool["chosen"] is not None:
        chosen = next(c for c in pool["candidates"] if c["server"] == pool["chosen"])
        score = _ms(chosen["score_seconds"])
        shown = escape.term(pool["chosen"])
        return f"pool {escape.term(name)}: [green]{shown}[/] (tier {chosen['tier']}, {score})"
    out = [f"{c['server']}: {c['why']}" for c in pool["candidates"] if not c["eligible"]]
    why = escape.term("; ".join(out))
    return f"pool {escape.term(name)}: [red]no eligible server[/] ({why})"


def _table(targets: list[Target], reports: list[ServerReport]) -> Table:
    table = Table(title="jitsi-monitor check", title_justify="left")
    for column in ("server", "verdict", "DNS", "connect", "TLS", "first byte"):
        table.add_column(column, no_wrap=True)
    table.add_column("cert days", justify="right", no_wrap=True)
    table.add_column("signalling", no_wrap=True)
    table.add_column("JWT", no_wrap=True)
    table.add_column("embed limit", no_wrap=True)
    table.add_column("media", no_wrap=True)
    table.add_column("first failing check")
    for target, report in zip(targets, reports, strict=True):
        days = cert_days_left(report)
        state = verdict(report)
        embed = report.embed_limit_seconds
        failure = report.first_failure
        table.add_row(
            escape.term(target.name),
            f"[green]{state}[/]" if report.up else f"[red]{state}[/]",
            _ms(report.phase_seconds("resolve")),
            _ms(report.phase_seconds("connect")),
            _ms(report.phase_seconds("tls")),
            _ms(report.phase_seconds("processing")),
            "-" if days is None else f"{days:.0f}",
            _signalling(report),
            _jwt(report),
            "unknown"
            if embed is None
            else ("none" if embed == 0 else f"[yellow]ends after {embed} s[/]"),
            _media(report),
            "-"
            if failure is None
            else escape.term(f"{failure.check.value}: {failure.reason.value}: {failure.detail}"),
            end_section=False,
        )
    return table


@click.command()
@config_arg
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--server", "only", multiple=True, help="Probe only this server (repeatable).")
@shard_option
def check(config: Path, as_json: bool, only: tuple[str, ...], shard: Shard | None) -> None:
    """Probe every server once and print the results.

    Exit 0 when every server is healthy, 1 when any is not, 2 for a bad config.
    """
    cfg = load(config)
    fleet, pools = cfg.fleet(shard or cfg.shard_spec())
    targets = fleet
    if only:
        unknown = sorted(set(only) - {t.name for t in targets})
        if unknown:
            names = {s.name for s in cfg.servers}
            where = " in this shard" if set(unknown) <= names else ""
            names_shown = escape.plain(", ".join(unknown), 200)
            click.echo(f"{escape.plain(config)}: no server named {names_shown}{where}", err=True)
            sys.exit(EXIT_CONFIG)
        targets = [t for t in targets if t.name in only]
    reports = event_loop.run(_check_all(cfg, targets))
    state = State(location=cfg.location)
    state.set_targets(fleet)
    state.set_pools(pools)
    decisions = Decisions(state, logged=False)
    for report in reports:
        decisions.take(state.record(report))
    if as_json:
        out: dict[str, Any] = {
            "location": cfg.location,
            "servers": [report_dict(t, r) for t, r in zip(targets, reports, strict=True)],
            "pools": [pool_dict(state, name) for name in state.pools],
        }
        click.echo(escape.to_json(out, indent=2))
    else:
        console = Console(width=None if sys.stdout.isatty() else 200, highlight=False, emoji=False)
        console.print(_table(targets, reports))
        for name in state.pools:
            console.print(_pool_line(state, name))
    sys.exit(EXIT_OK if all(r.up for r in reports) else EXIT_UNHEALTHY)
