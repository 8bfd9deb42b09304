"""The ``jitsi-monitor`` command: check, serve, validate.

Exit codes: 0 all healthy (or config valid), 1 a server is not healthy,
2 the config (or the command line) is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
from aiohttp import web
from rich.console import Console
from rich.table import Table

from monitor import __version__
from monitor import loop as event_loop
from monitor.config import ConfigError, MonitorConfig, Shard, Target, load_config, parse_shard
from monitor.http import make_app
from monitor.lab import FAULTS, LabCA, LabOptions, LabServer, servers_yaml
from monitor.lab.server import MODERATION, SHAPES
from monitor.lab.tokens import ENFORCEMENT, TokenPolicy
from monitor.model import Check, Reason, ServerReport
from monitor.notify import Notifier, event_body
from monitor.ondemand import OnDemand
from monitor.probes.tokens import mint
from monitor.runner import Runner, user_agent
from monitor.scheduler import Scheduler, log_decision
from monitor.selector import Decision
from monitor.state import State, load_state, save_state
from monitor.views import cert_days_left, pool_dict, report_dict, verdict

__all__ = ["main"]

log = logging.getLogger("monitor")

EXIT_OK, EXIT_UNHEALTHY, EXIT_CONFIG = 0, 1, 2
# How often serve writes its state file (and at every change of a pool's choice).
SAVE_EVERY = 30.0

_config_arg = click.argument(
    "config", type=click.Path(dir_okay=False, path_type=Path), default="servers.yaml"
)


def _shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_shard_option = click.option(
    "--shard",
    callback=_shard,
    metavar="I/N",
    help="Probe only shard I of N of the servers (default: the config's shard).",
)


def _load(path: Path) -> MonitorConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"{path}: the config is not valid:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_CONFIG)


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
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


# -- validate -------------------------------------------------------------------


@cli.command()
@_config_arg
def validate(config: Path) -> None:
    """Check a config file and explain every problem (exit 2 when invalid)."""
    cfg = _load(config)
    names = ", ".join(s.name for s in cfg.servers) or "none"
    click.echo(f"{config}: valid; {len(cfg.servers)} server(s): {names}")


# -- check ----------------------------------------------------------------------


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
    checks = [report.check(c) for c in (Check.SIGNALLING, Check.FOCUS, Check.MUC)]
    run = [c for c in checks if c is not None]
    if not run:
        return "off"
    failed = next((c for c in run if not c.success), None)
    if failed is not None and failed.reason is Reason.SKIPPED:
        return "skipped"
    if failed is not None:
        return f"[red]{failed.check.value}: {failed.reason.value}[/]"
    return f"[green]ok[/] {_ms(report.ping_rtt)}"


def _jwt(report: ServerReport) -> str:
    """The token verdicts in plain words."""
    valid = report.check(Check.JWT_VALID)
    if valid is None:
        return "-"
    if not valid.success:
        return f"[red]token {valid.reason.value}[/]" if valid.reason is not Reason.SKIPPED else "-"
    words = []
    enforced = report.check(Check.JWT_ENFORCED)
    if enforced is not None and enforced.reason is Reason.JWT_NOT_ENFORCED:
        words.append("[red]NOT ENFORCED[/]")
    elif enforced is not None and not enforced.success:
        words.append(f"enforcement {enforced.reason.value}")
    moderation = report.check(Check.MODERATION)
    if moderation is not None and moderation.reason is Reason.MODERATION_CLAIM_IGNORED:
        words.append("[red]moderator claim ignored[/]")
    elif moderation is not None and not moderation.success:
        words.append(moderation.reason.value)
    return "; ".join(words) or "[green]ok[/]"


def _pool_line(state: State, name: str) -> str:
    pool = pool_dict(state, name)
    if pool["chosen"] is not None:
        chosen = next(c for c in pool["candidates"] if c["server"] == pool["chosen"])
        score = _ms(chosen["score_seconds"])
        return f"pool {name}: [green]{pool['chosen']}[/] (tier {chosen['tier']}, {score})"
    out = [f"{c['server']}: {c['why']}" for c in pool["candidates"] if not c["eligible"]]
    return f"pool {name}: [red]no eligible server[/] ({'; '.join(out)})"


def _table(targets: list[Target], reports: list[ServerReport]) -> Table:
    table = Table(title="jitsi-monitor check", title_justify="left")
    for column in ("server", "verdict", "DNS", "connect", "TLS", "first byte"):
        table.add_column(column, no_wrap=True)
    table.add_column("cert days", justify="right", no_wrap=True)
    table.add_column("signalling", no_wrap=True)
    table.add_column("JWT", no_wrap=True)
    table.add_column("embed limit", no_wrap=True)
    table.add_column("first failing check")
    for target, report in zip(targets, reports, strict=True):
        days = cert_days_left(report)
        state = verdict(report)
        embed = report.embed_limit_seconds
        failure = report.first_failure
        table.add_row(
            target.name,
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
            "-"
            if failure is None
            else f"{failure.check.value}: {failure.reason.value}: {failure.detail}",
            end_section=False,
        )
    return table


@cli.command()
@_config_arg
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--server", "only", multiple=True, help="Probe only this server (repeatable).")
@_shard_option
def check(config: Path, as_json: bool, only: tuple[str, ...], shard: Shard | None) -> None:
    """Probe every server once and print the results.

    Exit 0 when every server is healthy, 1 when any is not, 2 for a bad config.
    """
    cfg = _load(config)
    fleet, pools = cfg.fleet(shard or cfg.shard_spec())
    targets = fleet
    if only:
        unknown = sorted(set(only) - {t.name for t in targets})
        if unknown:
            names = {s.name for s in cfg.servers}
            where = " in this shard" if set(unknown) <= names else ""
            click.echo(f"{config}: no server named {', '.join(unknown)}{where}", err=True)
            sys.exit(EXIT_CONFIG)
        targets = [t for t in targets if t.name in only]
    reports = event_loop.run(_check_all(cfg, targets))
    state = State(location=cfg.location)
    state.set_targets(fleet)
    state.set_pools(pools)
    for report in reports:
        state.record(report)
    if as_json:
        out: dict[str, Any] = {
            "location": cfg.location,
            "servers": [report_dict(t, r) for t, r in zip(targets, reports, strict=True)],
            "pools": [pool_dict(state, name) for name in state.pools],
        }
        click.echo(json.dumps(out, indent=2))
    else:
        console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
        console.print(_table(targets, reports))
        for name in state.pools:
            console.print(_pool_line(state, name))
    sys.exit(EXIT_OK if all(r.up for r in reports) else EXIT_UNHEALTHY)


# -- token ----------------------------------------------------------------------


@cli.command()
@click.argument("server")
@_config_arg
@click.option(
    "--room", default=None, help="Room name (default: a random jitsi-monitor-test-… room)."
)
@click.option("--moderator", is_flag=True, help="Mint a moderator token.")
def token(server: str, config: Path, room: str | None, moderator: bool) -> None:
    """Print a meeting URL with a fresh token for SERVER, to test by hand.

    The URL carries a credential until the token expires: share it with care.
    """
    cfg = _load(config)
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


# -- serve ----------------------------------------------------------------------


async def _serve(path: Path, cfg: MonitorConfig, host: str, port: int, shard: Shard | None) -> None:
    spec = shard or cfg.shard_spec()
    targets, pools = cfg.fleet(spec)
    state = State(location=cfg.location, shard=str(spec) if spec else None)
    state.set_targets(targets)
    state.set_pools(pools)
    state_path = cfg.state_path(spec)
    if state_path is not None:
        problem = load_state(state, state_path)
        if problem:
            log.warning("%s", problem)
    runner = Runner(cfg)
    ondemand = OnDemand(runner, cfg)
    scheduler = Scheduler(runner, state)
    notifier = Notifier(
        cfg.webhooks(),
        cfg.notify.command,
        user_agent=user_agent(cfg.contact),
        command_timeout=cfg.notify.command_timeout,
    )

    def persist() -> None:
        if state_path is None:
            return
        try:
            save_state(state, state_path)
        except OSError as exc:
            log.error("cannot save the state to %s: %s", state_path, exc.strerror or exc)

    def on_decision(decision: Decision) -> None:
        urls = {name: target.url for name, target in state.targets.items()}
        notifier.submit(event_body(decision, state.location, urls))
        persist()

    scheduler.on_decision = on_decision
    tasks: list[asyncio.Future[None]] = []

    async def keep_saving() -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            persist()

    app_runner = web.AppRunner(make_app(state, ondemand), access_log=None)
    await app_runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reload() -> None:
        try:
            new = load_config(path)
        except ConfigError as exc:
            state.config_reload_ok = False
            log.error("config reload failed; keeping the running config:\n%s", exc)
            return
        fixed = ("location", "concurrency", "dns", "contact", "listen", "state_file")
        if any(getattr(new, k) != getattr(cfg, k) for k in fixed) or (
            new.notify.command_timeout != cfg.notify.command_timeout
        ):
            log.warning("%s and notify.command_timeout change only on restart", ", ".join(fixed))
        spec = shard or new.shard_spec()
        targets, pools = new.fleet(spec)
        state.shard = str(spec) if spec else None
        state.set_targets(targets)
        state.set_pools(pools)
        ondemand.update(new)
        notifier.webhooks = new.webhooks()
        notifier.command = new.notify.command
        for decision in state.select(None, time.time()):
            state.decisions.append(decision)
            log_decision(decision)
            on_decision(decision)
        scheduler.update(targets)
        state.config_reload_ok = True
        state.config_reload_time = time.time()
        log.info("config reloaded: %d server(s)", len(targets))

    try:
        site = web.TCPSite(app_runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload)
        scheduler.start(targets)
        saver = asyncio.ensure_future(keep_saving())
        tasks.append(saver)
        bound = app_runner.addresses[0][1] if app_runner.addresses else port
        part = f" (shard {spec} of the config's {len(cfg.servers)})" if spec else ""
        log.info(
            "probing %d server(s)%s on %s; metrics on http://%s:%d/metrics",
            len(state.targets),
            part,
            event_loop.loop_name(),
            host,
            bound,
        )
        await stop.wait()
        log.info("stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        await scheduler.shutdown()
        for task in tasks:
            task.cancel()
        persist()
        await notifier.close()
        await ondemand.close()
        await runner.close()
        await app_runner.cleanup()


@cli.command()
@_config_arg
@click.option("--host", default=None, help="Address to listen on (default: listen.host).")
@click.option("--port", type=int, default=None, help="Port to listen on (default: listen.port).")
@_shard_option
def serve(config: Path, host: str | None, port: int | None, shard: Shard | None) -> None:
    """Probe on a schedule and serve /metrics and /healthz.

    SIGHUP reloads the config; SIGINT or SIGTERM stops cleanly.
    """
    cfg = _load(config)
    # Ctrl-C before the signal handlers are in place is still a clean stop.
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(
            _serve(
                config,
                cfg,
                host or cfg.listen.host,
                cfg.listen.port if port is None else port,
                shard,
            )
        )


# -- lab ------------------------------------------------------------------------


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


async def _lab(
    count: int,
    port: int,
    options: LabOptions,
    faults: dict[int, str],
    latency_step: float,
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
            await server.start(port + index - 1 if port else 0)
            servers.append(server)
        sys.stdout.write(servers_yaml(servers))
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info("lab: %d server(s) running; Ctrl-C stops them", len(servers))
        await stop.wait()
    finally:
        for server in servers:
            await server.stop()


@cli.command()
@click.option("--servers", "count", type=click.IntRange(1, 1000), default=3, show_default=True)
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
    port: int,
    shape: str,
    disable_iframe_api: bool,
    tls: bool,
    use_jwt: bool,
    moderation: str,
    enforcement: str,
    latency: float,
    latency_step: float,
    faults: tuple[str, ...],
) -> None:
    """Run simulated Jitsi servers on loopback and print a servers.yaml for them.

    Save the output and point the monitor at it:
    jitsi-monitor lab > lab.yaml, then jitsi-monitor serve lab.yaml.
    """
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
    )
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(_lab(count, port, options, _fault_spec(faults), latency_step))


def main() -> None:
    """Entry point of the ``jitsi-monitor`` script."""
    cli()
