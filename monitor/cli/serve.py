"""``jitsi-monitor serve``: probe on a schedule and serve what the monitor knows.

The command only reads its arguments and the config; ``monitor.service``
holds the lifecycle (start, reload, stop, persist). Logging is set up by
the command group (``monitor.cli``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from monitor import loop as event_loop
from monitor.cli.common import config_arg, load, shard_option
from monitor.config import Shard
from monitor.service import Service, StartError

__all__ = ["serve"]


@click.command()
@config_arg
@click.option("--host", default=None, help="Address to listen on (default: listen.host).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: listen.port).")
@shard_option
def serve(config: Path, host: str | None, port: int | None, shard: Shard | None) -> None:
    """Probe on a schedule and serve /metrics and /healthz.

    SIGHUP reloads the config; SIGINT or SIGTERM stops cleanly.
    """
    cfg = load(config)
    service = Service(
        config,
        cfg,
        host=host or cfg.listen.host,
        port=cfg.listen.port if port is None else port,
        shard=shard,
    )
    # Ctrl-C before the signal handlers are in place is still a clean stop.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            event_loop.run(service.run())
        except StartError as exc:
            raise click.ClickException(str(exc)) from None
