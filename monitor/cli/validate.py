"""``jitsi-monitor validate``: check a config file and explain every problem."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.common import config_arg, load

__all__ = ["validate"]


@click.command()
@config_arg
def validate(config: Path) -> None:
    """Check a config file and explain every problem (exit 2 when invalid)."""
    cfg = load(config)
    names = ", ".join(s.name for s in cfg.servers) or "none"
    click.echo(f"{config}: valid; {len(cfg.servers)} server(s): {names}")
