"""``jitsi-monitor serve``: probe on a schedule and serve what the monitor knows."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import click
from aiohttp import web

from monitor import loop as event_loop
from monitor.cli.common import (
    config_arg,
    load,
    log,
    shard_option,
)
from monitor.config import ConfigError, MonitorConfig, Shard, Target, load_config
from monitor.decisions import Decisions
from monitor.notify import Notifier, event_body
from monitor.ondemand import OnDemand
from monitor.outbox import Outbox
from monitor.runner import Runner, user_agent
from monitor.scheduler import STARTUP_SPREAD, Scheduler
from monitor.selector import Decision
from monitor.server import make_app
from monitor.sources.watch import Sources
from monitor.state import State, load_state, save_state

__all__ = ["serve"]

# How often serve writes its state file (and at every change of a pool's choice).
SAVE_EVERY = 30.0


async def _serve(path: Path, cfg: MonitorConfig, host: str, port: int, shard: Shard | None) -> None:
    spec = shard or cfg.shard_spec()
    # server_sources: the config's servers and those of its sources (files
    # read now, HTTP endpoints once running); they apply changes themselves.
    sources = Sources(cfg, user_agent=user_agent(cfg.contact), apply=lambda new: adopt_servers(new))
    targets, pools = sources.merged().fleet(spec)
    state = State(location=cfg.location, shard=str(spec) if spec else None)
    state.sources = sources.status
    state.set_targets(targets)
    state.set_pools(pools)
    state.outbox = Outbox(max_age=cfg.notify.max_age, max_pending=cfg.notify.max_pending)
    state_path = cfg.state_path(spec)

    def persist() -> None:
        if state_path is None:
            return
        try:
            save_state(state, state_path)
        except OSError as exc:
            log.error("cannot save the state to %s: %s", state_path, exc.strerror or exc)

    notifier = Notifier(
        state.outbox,
        user_agent=user_agent(cfg.contact),
        command_timeout=cfg.notify.command_timeout,
        save=persist,
    )
    # The sinks first: the saved outbox keeps the events of those configured.
    notifier.configure(cfg.webhooks(), cfg.notify.command)
    if state_path is not None:
        problem = load_state(state, state_path, first_probes_within=STARTUP_SPREAD)
        if problem:
            log.warning("%s", problem)
    state.command_exits = notifier.exits
    runner = Runner(cfg)
    ondemand = OnDemand(runner, sources.merged())

    def notify(decision: Decision) -> None:
        urls = {name: target.url for name, target in state.targets.items()}
        notifier.submit(decision, event_body(decision, state.location, urls))

    decisions = Decisions(state, notify=notify, save=persist)
    scheduler = Scheduler(runner, state, decisions)
    tasks: list[asyncio.Future[None]] = []

    async def keep_saving() -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            persist()

    app_runner = web.AppRunner(make_app(state, ondemand), access_log=None)
    await app_runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def adopt_servers(new: MonitorConfig) -> list[Target]:
        """Adopt a server list: a reload's, or the sources' when they change."""
        spec = shard or new.shard_spec()
        targets, pools = new.fleet(spec)
        state.shard = str(spec) if spec else None
        state.set_targets(targets)
        state.set_pools(pools)
        ondemand.update(new)
        decisions.take(state.select(None, time.time()))
        scheduler.update(targets)
        return targets

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
        state.outbox.max_age = new.notify.max_age
        state.outbox.max_pending = new.notify.max_pending
        notifier.configure(new.webhooks(), new.notify.command)
        notifier.start()
        targets = adopt_servers(sources.configure(new))
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
        sources.start()
        notifier.start()  # events a stop left in the outbox go first
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
        await sources.close()
        await scheduler.shutdown()
        for task in tasks:
            task.cancel()
        await notifier.close()
        persist()
        await ondemand.close()
        await runner.close()
        await app_runner.cleanup()


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
