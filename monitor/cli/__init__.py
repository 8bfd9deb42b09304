"""The ``jitsi-monitor`` command: check, serve, validate, token, lab, discover, rank.

Exit codes: 0 all healthy (or config valid), 1 a server is not healthy,
2 the config (or the command line) is wrong. One module per command.
"""

from __future__ import annotations

import click

from monitor import __version__
from monitor.cli import check, discover, lab, rank, serve, token, validate
from monitor.cli.common import setup_logging

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jitsi-monitor")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
def cli(log_level: str) -> None:
    """Health and failover monitor for Jitsi Meet servers."""
    setup_logging(log_level)


# Each command lives in the module of its name.
for command in (
    validate.validate,
    check.check,
    token.token,
    serve.serve,
    lab.lab,
    discover.discover,
    rank.rank_command,
):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``jitsi-monitor`` script."""
    cli()
