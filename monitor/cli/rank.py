"""``jitsi-monitor rank``: probe candidates once and list them fit first, then nearest."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from monitor import escape
from monitor import loop as event_loop
from monitor.checks import LADDER
from monitor.checks.web.probe import WebResult
from monitor.cli.common import EXIT_CONFIG, EXIT_OK, EXIT_UNHEALTHY, load
from monitor.cli.discover import discover_options, discovered, fragment, summary
from monitor.config import ConfigError, MonitorConfig, parse_config
from monitor.config.values import NAME
from monitor.domain import Target
from monitor.model import ServerReport
from monitor.rank import DEFAULT_REQUIRE, Ranked, rank, tiers
from monitor.runner import Runner

__all__ = ["rank_command"]

# Strangers' servers: a few ladders at a time, one per server.
DEFAULT_CONCURRENCY = 4
POOL_SIZE = 3


async def _probe_all(
    cfg: MonitorConfig, targets: list[Target], concurrency: int
) -> list[ServerReport]:
    runner = Runner(cfg)
    slots = asyncio.Semaphore(concurrency)

    async def one(target: Target) -> ServerReport:
        async with slots:
            return await runner.run_now(target)

    try:
        return list(await asyncio.gather(*(one(t) for t in targets)))
    finally:
        await runner.close()


def _words(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    words = tuple(w.strip() for item in value for w in item.split(",") if w.strip())
    for word in words:
        if word not in LADDER.requirements:
            raise click.BadParameter(
                f"{word!r} is not a requirement; use {', '.join(LADDER.requirements)}"
            )
    return words or DEFAULT_REQUIRE


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _where(target: Target) -> str:
    labels = dict(target.labels)
    return ", ".join(v for k in ("country", "region", "hoster") if (v := labels.get(k)))


def _embed(report: ServerReport) -> int | None:
    web = report.result(WebResult)
    return web.embed_limit_seconds if web is not None else None


def _table(ranked: list[Ranked]) -> Table:
    table = Table(title="jitsi-monitor rank", title_justify="left")
    for column in ("#", "server", "fit", "round trip", "embed limit", "where", "why out"):
        table.add_column(column, no_wrap=column not in ("where", "why out"))
    for index, r in enumerate(ranked, 1):
        embed = _embed(r.report)
        rtt = _ms(r.score) + (" (connect)" if r.method == "tcp_connect" else "")
        table.add_row(
            str(index),
            escape.term(r.target.name),
            "[green]yes[/]" if r.fit else "[red]no[/]",
            rtt,
            "unknown" if embed is None else ("none" if embed == 0 else f"{embed} s"),
            escape.term(_where(r.target)),
            escape.term(r.why),
        )
    return table


def _as_dict(index: int, r: Ranked) -> dict[str, Any]:
    return {
        "rank": index,
        "server": r.target.name,
        "url": r.target.url,
        "fit": r.fit,
        "why": r.why or None,
        "rtt_seconds": r.score,
        "rtt_method": r.method,
        "embed_limit_seconds": _embed(r.report),
        "up": r.report.up,
        "labels": dict(r.target.labels),
    }


def _pool_yaml(
    name: str,
    best: list[Ranked],
    require: tuple[str, ...],
    embedding: bool,
    servers: list[dict[str, object]] | None,
) -> str:
    members = [r.target.name for r in best]
    pool: dict[str, object] = {"name": name, "servers": members, "require": list(require)}
    if embedding:
        pool["embedding"] = True
    layered = tiers(best)
    if len(layered) > 1:
        pool["tiers"] = layered
    text = ""
    if servers is not None:
        text = fragment([s for s in servers if s["name"] in members])
    text += yaml.safe_dump({"pools": [pool]}, sort_keys=False, default_flow_style=None)
    if servers is not None:
        try:
            parse_config(text, "<rank --pool>")
        except ConfigError as exc:  # our own bug: never print what would not load
            raise click.ClickException(f"the pool would not load: {exc}") from None
    return text


@click.command("rank")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--discover",
    "source",
    metavar="SOURCE",
    help="Rank the servers of a list (a URL or a file) instead of a config.",
)
@discover_options
@click.option("--top", type=click.IntRange(1, 10_000), default=None, help="Show only the first N.")
@click.option(
    "--require",
    multiple=True,
    callback=_words,
    help="Checks a fit server passes (comma-separated or repeated; default web,signalling,focus).",
)
@click.option("--embedding", is_flag=True, help="Servers that cut embedded meetings are out.")
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON.")
@click.option(
    "--pool",
    "pool_name",
    metavar="NAME",
    help="Print a pools: entry of the best N (--top, default 3) instead.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Ladders at once (be kind to public servers).",
)
def rank_command(
    config: Path | None,
    source: str | None,
    fmt: str,
    country: tuple[str, ...],
    region: tuple[str, ...],
    labels: tuple[tuple[str, str], ...],
    include_limited: bool,
    contact: str | None,
    top: int | None,
    require: tuple[str, ...],
    embedding: bool,
    as_json: bool,
    pool_name: str | None,
    concurrency: int,
) -> None:
    """Probe every candidate once and rank them: fit first, then nearest.

    Candidates are the servers of CONFIG (default servers.yaml), or of a list
    with --discover. Exit 0 when at least one is fit, 1 when none is.
    """
    if source is not None and config is not None:
        raise click.UsageError("give a CONFIG or --discover SOURCE, not both")
    if source is None and (country or region or labels or include_limited or fmt != "auto"):
        raise click.UsageError(
            "--country, --region, --label, --format and --include-limited go with --discover"
        )
    if contact is not None and any(c in contact for c in "\r\n()"):
        raise click.BadParameter("one line without parentheses", param_hint="--contact")
    if pool_name is not None and not NAME.fullmatch(pool_name):
        raise click.BadParameter("letters, digits, '.', '_' or '-'", param_hint="--pool")
    if pool_name is not None and as_json:
        raise click.UsageError("--pool prints YAML; leave out --json")
    listed: list[dict[str, object]] | None = None
    if source is not None:
        found = discovered(
            source,
            fmt=fmt,
            country=country,
            region=region,
            labels=labels,
            include_limited=include_limited,
            contact=contact,
        )
        click.echo(summary(found), err=True)
        listed = found.servers
        text = fragment(listed) + (f"contact: {json.dumps(contact)}\n" if contact else "")
        try:
            cfg = parse_config(text, source)
        except ConfigError as exc:
            raise click.ClickException(f"the list did not make a valid config: {exc}") from None
    else:
        cfg = load(config or Path("servers.yaml"))
        if contact is not None:
            cfg = cfg.model_copy(update={"contact": contact})
    targets = cfg.targets()
    if not targets:
        click.echo("no servers to rank", err=True)
        sys.exit(EXIT_CONFIG)
    click.echo(f"probing {len(targets)} server(s), {concurrency} at a time", err=True)
    reports = event_loop.run(_probe_all(cfg, targets, concurrency))
    ranked = rank(targets, reports, require=require, embedding=embedding)
    fit = [r for r in ranked if r.fit]
    shown = ranked[:top] if top else ranked
    if pool_name is not None:
        best = fit[: top or POOL_SIZE]
        console = Console(stderr=True, width=200, highlight=False)
        console.print(_table(shown))
        if not best:
            click.echo("no fit server: no pool to print", err=True)
            sys.exit(EXIT_UNHEALTHY)
        click.echo(
            f"# jitsi-monitor rank: pool {pool_name} of the {len(best)} nearest fit server(s)"
        )
        click.echo(_pool_yaml(pool_name, best, require, embedding, listed), nl=False)
    elif as_json:
        out = {
            "location": cfg.location,
            "require": list(require),
            "embedding": embedding,
            "fit": len(fit),
            "candidates": [_as_dict(i, r) for i, r in enumerate(shown, 1)],
        }
        click.echo(json.dumps(out, indent=2))
    else:
        console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
        console.print(_table(shown))
        if len(shown) < len(ranked):
            click.echo(f"{len(ranked) - len(shown)} more not shown (--top {top})")
    sys.exit(EXIT_OK if fit else EXIT_UNHEALTHY)
