"""``jitsi-monitor serve``: probe on a schedule and serve what the monitor knows."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import time
from dataclasses import dataclass
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
from monitor.config import ConfigError, MonitorConfig, Shard, load_config
from monitor.config.reload import restart_only_changes
from monitor.config.source import beside_the_loop
from monitor.decisions import Decisions
from monitor.domain import Target
from monitor.history import History, Limits, open_history, pool_record, report_record
from monitor.notify import Notifier, event_body
from monitor.ondemand import OnDemand
from monitor.outbox import Outbox
from monitor.runner import Runner, user_agent
from monitor.scheduler import Scheduler, first_round_window
from monitor.selector import Decision, PoolSettings
from monitor.server import make_app, make_status_app
from monitor.server.guard import fd_budget, handler_args, listen
from monitor.sources.watch import Sources
from monitor.state import HISTORY_UNUSABLE, State, load_state, save_state
from monitor.status import Pages

__all__ = ["serve"]

# How often serve writes its state file (and at every change of a pool's choice).
SAVE_EVERY = 30.0
# A delivery's result is saved at most this long after it; a burst of
# deliveries costs one write (a crash in between sends those events again).
SAVE_AFTER_DELIVERY = 1.0


@dataclass(frozen=True, slots=True)
class _Read:
    """A config read for a reload, with what it resolves to (made in the worker thread)."""

    spec: Shard | None
    targets: list[Target]
    pools: list[PoolSettings]
    seconds: float


@dataclass(slots=True)
class _Reloads:
    task: asyncio.Task[None] | None = None
    again: bool = False  # a SIGHUP came in while reading


def _read(path: Path, shard: Shard | None) -> tuple[MonitorConfig, _Read]:
    """Read, validate and resolve a config: the slow part of a reload, off the loop."""
    started = time.monotonic()
    with beside_the_loop():
        new = load_config(path)
        spec = shard or new.shard_spec()
        targets, pools = new.fleet(spec)
    return new, _Read(spec, targets, pools, time.monotonic() - started)


async def _serve(path: Path, cfg: MonitorConfig, host: str, port: int, shard: Shard | None) -> None:
    fds = fd_budget(cfg.concurrency + cfg.probe.concurrency)
    if fds.raised_from is not None:
        log.info("open-file limit raised from %d to %d", fds.raised_from, fds.limit)
    if fds.warning:
        log.warning("%s", fds.warning)
    log.info(
        "open-file limit %d: %d kept for probing, at most %d connections to serve's port",
        fds.limit,
        fds.probing,
        fds.connections,
    )
    listening: asyncio.AbstractServer | None = None
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
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or exc
            log.error("cannot save the state to %s: %s", state_path, why)

    soon: list[asyncio.TimerHandle] = []

    def persist_soon() -> None:
        """Save within SAVE_AFTER_DELIVERY seconds: one write for a burst of deliveries."""
        if soon:
            return

        def due() -> None:
            soon.clear()
            persist()

        soon.append(asyncio.get_running_loop().call_later(SAVE_AFTER_DELIVERY, due))

    notifier = Notifier(
        state.outbox,
        user_agent=user_agent(cfg.contact),
        command_timeout=cfg.notify.command_timeout,
        save=persist_soon,
    )
    # The sinks first: the saved outbox keeps the events of those configured.
    notifier.configure(cfg.webhooks(), cfg.notify.command)
    if state_path is not None:
        # Every member's first probe comes within the first round's window.
        within = max((first_round_window(len(targets), t.interval) for t in targets), default=0.0)
        problem = load_state(state, state_path, first_probes_within=within)
        if problem:
            log.warning("%s", problem)
    state.command_exits = notifier.exits
    history = await _open_history(cfg, spec, state)
    pages = Pages(state, cfg.status, history)
    runner = Runner(cfg)
    ondemand = OnDemand(runner, sources.merged())

    def notify(decision: Decision) -> None:
        urls = {name: target.url for name, target in state.targets.items()}
        notifier.submit(decision, event_body(decision, state.location, urls))
        if history is not None:
            history.add(pool_record(decision))

    decisions = Decisions(state, notify=notify, save=persist)
    scheduler = Scheduler(runner, state, decisions)
    tasks: list[asyncio.Future[None]] = []
    reloads = _Reloads()

    async def keep_saving() -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            persist()

    app_runner = web.AppRunner(make_app(state, ondemand, pages), access_log=None, **handler_args())
    await app_runner.setup()
    status_runner: web.AppRunner | None = None
    status_listening: asyncio.AbstractServer | None = None
    if cfg.status.listen is not None:
        status_runner = web.AppRunner(make_status_app(pages), access_log=None, **handler_args())
        await status_runner.setup()
    elif cfg.status.public and not _loopback(host):
        log.warning(
            "status.public is on and %s is not a loopback address: /metrics, /probe and "
            "/api/v1 are served there too; set status.listen for the pages and keep "
            'listen.host on loopback (see the README\'s "The public view")',
            host,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def adopt_servers(
        new: MonitorConfig, fleet: tuple[list[Target], list[PoolSettings]] | None = None
    ) -> list[Target]:
        """Adopt a server list: a reload's, or the sources' when they change."""
        spec = shard or new.shard_spec()
        targets, pools = fleet if fleet is not None else new.fleet(spec)
        state.shard = str(spec) if spec else None
        state.set_targets(targets)
        # Judging every pool takes a while in a large fleet: only when they changed.
        if pools != list(state.pools.values()):
            state.set_pools(pools)
            decisions.take(state.select(None, time.time()))
        ondemand.update(new)
        scheduler.update(targets)
        return targets

    def adopt(new: MonitorConfig, read: _Read) -> None:
        """Swap the new config in, all at once, on the loop."""
        started = time.monotonic()
        kept = restart_only_changes(cfg, new)
        if kept:
            log.warning(
                "config reload: kept the running value of %s (read only on restart)",
                ", ".join(kept),
            )
        pages.settings = new.status
        state.outbox.max_age = new.notify.max_age
        state.outbox.max_pending = new.notify.max_pending
        notifier.configure(new.webhooks(), new.notify.command)
        notifier.start()
        merged = sources.configure(new)
        # Without sources the fleet was worked out in the worker thread already.
        fleet = None if new.server_sources else (read.targets, read.pools)
        targets = adopt_servers(merged, fleet)
        state.config_reload_ok = True
        state.config_reload_time = time.time()
        log.info(
            "config reloaded: %d server(s) (read in %.2fs, swapped in %.0f ms)",
            len(targets),
            read.seconds,
            (time.monotonic() - started) * 1000,
        )

    def failed(why: str, trace: bool = False) -> None:
        state.config_reload_ok = False
        log.error("config reload failed; keeping the running config: %s", why, exc_info=trace)

    async def reload_now() -> None:
        """Read (in a worker thread) until no SIGHUP came in meanwhile."""
        while True:
            reloads.again = False
            try:
                new, read = await asyncio.to_thread(_read, path, shard)
            except ConfigError as exc:
                failed("; ".join(str(p) for p in exc.problems))
            except (MemoryError, RecursionError) as exc:
                failed(f"the config is too large or too deeply nested ({type(exc).__name__})")
            except Exception as exc:  # our own bug: say so, keep running
                failed(f"{type(exc).__name__}: {exc}", trace=True)
            else:
                try:
                    adopt(new, read)
                except Exception as exc:
                    failed(f"{type(exc).__name__}: {exc}", trace=True)
            if not reloads.again:
                return

    def reload() -> None:
        """SIGHUP: read the config off the loop; one more read if one is under way."""
        if reloads.task is not None and not reloads.task.done():
            reloads.again = True
            return
        reloads.task = asyncio.ensure_future(reload_now())

    try:
        try:
            listening, bound = await listen(app_runner, host, port, fds.connections)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        if status_runner is not None and cfg.status.listen is not None:
            where = cfg.status.listen
            try:
                status_listening, status_port = await listen(
                    status_runner, where.host, where.port, fds.connections
                )
            except OSError as exc:
                raise click.ClickException(
                    f"cannot listen on {where.host}:{where.port} (status.listen): {exc.strerror}"
                ) from None
            log.info("status pages (only) on http://%s:%d/", where.host, status_port)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload)
        scheduler.start(targets)
        sources.start()
        notifier.start()  # events a stop left in the outbox go first
        saver = asyncio.ensure_future(keep_saving())
        tasks.append(saver)
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
        if listening is not None:
            listening.close()
        if status_listening is not None:
            status_listening.close()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        # A reload first: one that finished reading now must not adopt into
        # sources or a scheduler that are already closed.
        for task in (reloads.task, *tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (reloads.task, *tasks) if t), return_exceptions=True)
        await sources.close()
        await scheduler.shutdown()
        await notifier.close()
        for handle in soon:
            handle.cancel()
        persist()
        if history is not None:
            await history.close()
        await ondemand.close()
        await runner.close()
        await app_runner.cleanup()
        if status_runner is not None:
            await status_runner.cleanup()


def _loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _open_history(cfg: MonitorConfig, spec: Shard | None, state: State) -> History | None:
    """The history file, fed each recorded report; None when off or unusable (logged)."""
    path = cfg.history_path(spec)
    if path is None:
        return None
    limits = Limits(cfg.history.retention, cfg.history.keep_events, cfg.history.max_rows)
    history = await asyncio.to_thread(open_history, path, limits)
    if history is None:
        state.history = HISTORY_UNUSABLE  # configured, but off for this run (logged)
    else:
        log.info("history in %s", path)
        state.listeners.append(lambda server: history.add(report_record(state.reports[server])))
        state.history = history
    return history


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
