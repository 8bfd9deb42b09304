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
from monitor.checks import FAMILIES
from monitor.checks.web.view import ms
from monitor.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_UNHEALTHY,
    config_arg,
    load,
    shard_option,
)
from monitor.config import MonitorConfig, Shard
from monitor.decisions import Decisions
from monitor.domain import Target
from monitor.model import ServerReport
from monitor.moodle.follow import follow
from monitor.moodle.status import MoodleStatus
from monitor.runner import Runner
from monitor.sources.moodle import read_once
from monitor.state import State
from monitor.views import pool_dict, report_dict, verdict

__all__ = ["check"]


async def _check_all(cfg: MonitorConfig, targets: list[Target]) -> list[ServerReport]:
    runner = Runner(cfg)
    try:
        return list(await asyncio.gather(*(runner.run(t) for t in targets)))
    finally:
        await runner.close()


def _pool_line(state: State, name: str) -> str:
    pool = pool_dict(state, name)
    if pool["chosen"] is not None:
        chosen = next(c for c in pool["candidates"] if c["server"] == pool["chosen"])
        score = ms(chosen["score_seconds"])
        shown = escape.term(pool["chosen"])
        return f"pool {escape.term(name)}: [green]{shown}[/] (tier {chosen['tier']}, {score})"
    out = [f"{c['server']}: {c['why']}" for c in pool["candidates"] if not c["eligible"]]
    why = escape.term("; ".join(out))
    return f"pool {escape.term(name)}: [red]no eligible server[/] ({why})"


def moodle_line(status: MoodleStatus) -> str:
    """Which server Moodle uses now, and how the last read went."""
    if status.last_success is None:
        uses = "[red]not read[/]"
    elif status.active_id is None:
        uses = "[red]mod_jitsi/server names no row[/]"
    else:
        server = escape.term(status.active_server or "a row not monitored")
        uses = f"mod_jitsi/server = {status.active_id} ({server})"
    why = f"{escape.term(status.error_reason)}: {escape.term(status.error)}"
    read = "read ok" if status.ok else f"[red]read failed[/] ({why})"
    lines = [f"moodle {escape.term(status.database)}: {uses}; {read}"]
    for row in status.not_provisioned:
        lines.append(
            f"  {escape.term(row['server'])}: not provisioned ({escape.term(row['status'])})"
        )
    for problem in status.problems:
        lines.append(f"  [yellow]{escape.term(problem)}[/]")
    return "\n".join(lines)


def _table(targets: list[Target], reports: list[ServerReport]) -> Table:
    """The table: the server and its verdict, each family's columns by slot
    (``monitor.checks.family.Slot``), the first failing check."""
    columns = [
        column
        for slot in ("steps", "facts", "end")
        for family in FAMILIES
        for column in family.columns
        if column.slot == slot
    ]
    table = Table(title="jitsi-monitor check", title_justify="left")
    for title in ("server", "verdict"):
        table.add_column(title, no_wrap=True)
    for column in columns:
        table.add_column(column.title, justify=column.justify, no_wrap=True)
    table.add_column("first failing check")
    for target, report in zip(targets, reports, strict=True):
        state = verdict(report)
        failure = report.first_failure
        table.add_row(
            escape.term(target.name),
            f"[green]{state}[/]" if report.up else f"[red]{state}[/]",
            *(column.cell(report) for column in columns),
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

    Exit 0 when every server is healthy, 1 when any is not (or Moodle cannot be read),
    2 for a bad config.
    """
    cfg, site = event_loop.run(read_once(load(config)))
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
    if site is not None:  # the site pool starts from what Moodle uses now
        active = site.status.active_server
        follow(state.pools, state.pool_states, site.spec.pool, active, 0.0, at_start=True)
    decisions = Decisions(state, logged=False)
    for report in reports:
        decisions.take(state.record(report))
    if as_json:
        out: dict[str, Any] = {
            "location": cfg.location,
            "servers": [report_dict(t, r) for t, r in zip(targets, reports, strict=True)],
            "pools": [pool_dict(state, name) for name in state.pools],
        }
        if site is not None:
            out["moodle"] = site.status.as_dict()
        click.echo(escape.to_json(out, indent=2))
    else:
        console = Console(width=None if sys.stdout.isatty() else 200, highlight=False, emoji=False)
        console.print(_table(targets, reports))
        for name in state.pools:
            console.print(_pool_line(state, name))
        if site is not None:
            console.print(moodle_line(site.status))
    healthy = all(r.up for r in reports) and (site is None or bool(site.status.ok))
    sys.exit(EXIT_OK if healthy else EXIT_UNHEALTHY)
