"""``jitsi-monitor lab``: simulated Jitsi servers on loopback, with a servers.yaml for them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import resource
import secrets
import signal
import sys

import click

from monitor import loop as event_loop
from monitor.cli.common import (
    log,
)
from monitor.lab import FAULTS, LabCA, LabOptions, LabServer, servers_yaml
from monitor.lab.server import MODERATION, SHAPES
from monitor.lab.tokens import ENFORCEMENT, TokenPolicy

__all__ = ["lab"]


def _fault_spec(value: tuple[str, ...]) -> dict[int, str]:
    faults: dict[int, str] = {}
    for item in value:
        number, sep, fault = item.partition("=")
        if not sep or not number.isdigit() or fault not in FAULTS:
            raise click.BadParameter(
                f"{item!r}: use N=FAULT, FAULT one of {', '.join(FAULTS)}", param_hint="--fault"
            )
        faults[int(number)] = fault
    return faults


def _loopback_v4(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        address = None
    if address is None or address not in ipaddress.IPv4Network("127.0.0.0/8"):
        raise click.BadParameter(f"{value!r}: give a loopback address, 127.0.0.0/8")
    return str(address)


# Open files per lab server: its listening socket, the UDP socket of its
# simulated TURN server (--media), and room for the monitor's connections
# to it while a ladder runs (a page, config.js, a WebSocket).
FDS_PER_SERVER = 4
# Besides: the interpreter, the event loop, logs, a CA's files.
FDS_RESERVE = 64


def _fit_open_files(count: int, media: bool) -> None:
    """Raise the soft open-file limit toward the hard one for ``count`` servers,
    or stop with a message that says what they need (exit 2)."""
    wanted = count * (FDS_PER_SERVER + int(media)) + FDS_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return
    raise click.UsageError(
        f"{count} lab servers need some {wanted} open files, and the limit is {soft} "
        f"(hard {'unlimited' if hard == resource.RLIM_INFINITY else hard}): raise it "
        "(ulimit -n) or run fewer servers, or several labs on other loopback addresses "
        "(--host 127.0.0.2, ...)"
    )


async def _lab(
    count: int,
    port: int,
    options: LabOptions,
    faults: dict[int, str],
    latency_step: float,
    host: str = "127.0.0.1",
) -> None:
    servers = []
    ca = LabCA() if options.tls else None
    try:
        for index in range(1, count + 1):
            server = LabServer(
                dataclasses.replace(
                    options,
                    latency=options.latency + latency_step * (index - 1),
                    fault=faults.get(index, "none"),  # type: ignore[arg-type]
                ),
                ca,
            )
            await server.start(port + index - 1 if port else 0, host)
            servers.append(server)
        sys.stdout.write(servers_yaml(servers))
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        first = servers[0]
        usual = first.options.fault

        async def toggle() -> None:
            """SIGUSR1: lab-1 goes down (its port closed), or comes back."""
            fault = usual if first.options.fault == "refuse" else "refuse"
            await first.set_fault(fault)
            log.warning("lab: lab-1 is %s", "down (refusing)" if fault == "refuse" else "back")

        loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(toggle()))
        log.info(
            "lab: %d server(s) running; SIGUSR1 takes lab-1 down and back; Ctrl-C stops them",
            len(servers),
        )
        await stop.wait()
    finally:
        for server in servers:
            await server.stop()


@click.command()
@click.option(
    "--servers",
    "count",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="How many; as many as the open-file limit allows.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=_loopback_v4,
    help="The loopback address to serve on (127.0.0.0/8): several labs, or one large fleet "
    "spread over several addresses.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="First port (default: any free)."
)
@click.option(
    "--shape",
    type=click.Choice(list(SHAPES)),
    default="object",
    show_default=True,
    help="Shape of the config.js the servers serve.",
)
@click.option(
    "--disable-iframe-api", is_flag=True, help="Serve disableIframeAPI: true (embed limit)."
)
@click.option("--tls", is_flag=True, help="Serve HTTPS and WSS with certificates of a lab CA.")
@click.option("--jwt", "use_jwt", is_flag=True, help="Require tokens (HS256, a generated secret).")
@click.option(
    "--moderation",
    type=click.Choice(list(MODERATION)),
    default="token_moderation",
    show_default=True,
    help="With --jwt: who becomes moderator.",
)
@click.option(
    "--enforcement",
    type=click.Choice(list(ENFORCEMENT)),
    default="strict",
    show_default=True,
    help="With --jwt: break token checks on purpose.",
)
@click.option(
    "--media", is_flag=True, help="Run a simulated STUN/TURN server per server and announce it."
)
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option("--latency-step", type=float, default=0.0, help="More latency for each next server.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="N=FAULT",
    help=f"Inject a fault into server N ({', '.join(FAULTS)}); repeatable.",
)
def lab(
    count: int,
    host: str,
    port: int,
    shape: str,
    disable_iframe_api: bool,
    tls: bool,
    use_jwt: bool,
    moderation: str,
    enforcement: str,
    media: bool,
    latency: float,
    latency_step: float,
    faults: tuple[str, ...],
) -> None:
    """Run simulated Jitsi servers on loopback and print a servers.yaml for them.

    Save the output and point the monitor at it:
    jitsi-monitor lab > lab.yaml, then jitsi-monitor serve lab.yaml.
    """
    if port and port + count - 1 > 65535:
        raise click.BadParameter(
            f"{count} servers from port {port} would pass 65535", param_hint="--port"
        )
    _fit_open_files(count, media)
    options = LabOptions(
        shape=shape,  # type: ignore[arg-type]
        disable_iframe_api=disable_iframe_api,
        latency=latency,
        tls=tls,
        tokens=TokenPolicy(
            app_id="jitsi-monitor-lab",
            secret=secrets.token_urlsafe(32),
            enforcement=enforcement,  # type: ignore[arg-type]
        )
        if use_jwt
        else None,
        moderation=moderation,  # type: ignore[arg-type]
        media=media,
    )
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(_lab(count, port, options, _fault_spec(faults), latency_step, host))
