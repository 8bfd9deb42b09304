"""What every command shares: exit codes, logging, the config argument, --shard, loading."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Final

import click

from monitor import escape
from monitor.config import (
    ConfigError,
    MonitorConfig,
    Problem,
    Shard,
    load_config,
    parse_config,
    parse_shard,
)
from monitor.config.yaml_reader import MAX_DOCUMENT_BYTES

__all__ = [
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_UNHEALTHY",
    "config_arg",
    "load",
    "log",
    "setup_logging",
    "shard_option",
]

log = logging.getLogger("monitor")

EXIT_OK, EXIT_UNHEALTHY, EXIT_CONFIG = 0, 1, 2


def setup_logging(level: str) -> None:
    """Log lines to stderr at ``level`` (debug, info, warning, error), escaped."""
    handler = logging.StreamHandler(sys.stderr)
    # Every argument of a log line is shown through monitor.escape.plain.
    handler.setFormatter(escape.LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


config_arg = click.argument(
    "config", type=click.Path(dir_okay=False, path_type=Path), default="servers.yaml"
)


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


shard_option = click.option(
    "--shard",
    callback=_shard,
    metavar="I/N",
    help="Probe only shard I of N of the servers (default: the config's shard).",
)


# Config arguments that mean standard input (a pipe: a stream that ends, not a file).
STDIN: Final = frozenset({"-", "/dev/stdin"})


def load(path: Path) -> MonitorConfig:
    try:
        if str(path) in STDIN:
            return _load_stdin(str(path))
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"{escape.plain(path)}: the config is not valid:", err=True)
        for problem in exc.problems:
            click.echo(f"  {escape.plain(problem)}", err=True)
        sys.exit(EXIT_CONFIG)


def _load_stdin(name: str) -> MonitorConfig:
    """A config piped in (``check -`` or ``/dev/stdin``), bounded as a file is;
    its relative paths start in the working directory."""
    raw = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
    if len(raw) > MAX_DOCUMENT_BYTES:
        message = f"the input is larger than {MAX_DOCUMENT_BYTES} bytes"
        raise ConfigError([Problem(name, None, "", message)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([Problem(name, line, "", "not UTF-8 text")]) from None
    return parse_config(text, name, Path.cwd())
