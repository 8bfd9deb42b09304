"""``jitsi-monitor validate``: check a config file and explain every problem."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from monitor import escape
from monitor.checks.jwt.settings import JwtSettings
from monitor.cli.common import EXIT_CONFIG, config_arg, load
from monitor.config import MonitorConfig, shard_of

__all__ = ["summary", "validate"]

# Up to this many servers (or pools), validate names each; past it, it counts them.
LIST_AT_MOST = 20


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(counter.items()))


def summary(cfg: MonitorConfig) -> list[str]:
    """What the config holds: names for a small one, counts for a large one."""
    servers = cfg.servers
    if len(servers) <= LIST_AT_MOST:
        names = ", ".join(s.name for s in servers) or "none"
        lines = [f"{len(servers)} server(s): {names}"]
    else:
        kinds: Counter[str] = Counter(s.kind for s in servers)
        tokens = sum(1 for s in servers if s.block(JwtSettings) is not None)
        lines = [f"{len(servers)} servers: {_counts(kinds)}; {tokens} with jwt"]
    pools = cfg.pools
    if len(pools) <= LIST_AT_MOST:
        lines += [f"pool {p.name}: {len(p.servers)} server(s)" for p in pools]
    else:
        members = sum(len(p.servers) for p in pools)
        largest = max(pools, key=lambda p: len(p.servers))
        lines.append(
            f"{len(pools)} pools with {members} members; "
            f"the largest: {largest.name} ({len(largest.servers)} servers)"
        )
    spec = cfg.shard_spec()
    if spec is not None:
        shards = Counter(shard_of(cfg, spec.count).values())
        sizes = ", ".join(f"{i}: {shards.get(i, 0)}" for i in range(1, spec.count + 1))
        lines.append(f"shard {spec}: {shards.get(spec.index, 0)} servers here (per shard: {sizes})")
    if cfg.ha is not None:
        # Nothing is connected to: the database is first reached when serve starts.
        name = cfg.ha.instance or "host name and pid"
        lines.append(
            f"ha: {cfg.ha.dsn().shown}, lease {cfg.ha.lease:g}s, instance {name} "
            "(the database is checked when serve starts)"
        )
    return lines


@click.command()
@config_arg
def validate(config: Path) -> None:
    """Check a config file and explain every problem (exit 2 when invalid).

    A small config's servers are named; a large one's are counted by kind,
    pool and shard.
    """
    cfg = load(config)
    try:
        cfg.ha_password()  # a password file that cannot be read is found now, not at start
    except ValueError as exc:
        click.echo(f"{escape.plain(config)}: the config is not valid:", err=True)
        click.echo(f"  {escape.plain(exc)}", err=True)
        sys.exit(EXIT_CONFIG)
    first, *rest = summary(cfg)
    click.echo(f"{escape.plain(config)}: valid; {first}")
    for line in rest:
        click.echo(f"  {line}")
