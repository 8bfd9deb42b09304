"""``jitsi-monitor token``: a meeting URL with a fresh token, to test a server by hand."""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path

import click

from monitor.checks.tokens import mint
from monitor.cli.common import EXIT_CONFIG, config_arg, load

__all__ = ["token"]


@click.command()
@click.argument("server")
@config_arg
@click.option(
    "--room", default=None, help="Room name (default: a random jitsi-monitor-test-… room)."
)
@click.option("--moderator", is_flag=True, help="Mint a moderator token.")
def token(server: str, config: Path, room: str | None, moderator: bool) -> None:
    """Print a meeting URL with a fresh token for SERVER, to test by hand.

    The URL carries a credential until the token expires: share it with care.
    """
    cfg = load(config)
    target = next((t for t in cfg.targets() if t.name == server), None)
    if target is None:
        click.echo(f"{config}: no server named {server}", err=True)
        sys.exit(EXIT_CONFIG)
    if target.token_key is None:
        click.echo(f"{config}: server {server} has no jwt block", err=True)
        sys.exit(EXIT_CONFIG)
    room = room or f"jitsi-monitor-test-{secrets.token_hex(4)}"
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", room):
        raise click.BadParameter("use letters, digits, '.', '_' or '-'", param_hint="--room")
    minted = mint(target.token_key, room.lower(), moderator=moderator)
    click.echo(f"{target.url}{room}?jwt={minted}")
    lifetime = int(target.token_key.lifetime)
    role = "a moderator" if moderator else "a participant"
    click.echo(f"valid for {lifetime} s, as {role} of room {room}", err=True)
