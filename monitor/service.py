"""The ``serve`` lifecycle in one place: start, the main loop, reload, stop and persist.

Modelled on uvicorn's ``Server``: the object is built from a loaded config
and does nothing until ``start()``; ``run()`` is what the process runs
(start, wait for SIGINT or SIGTERM, stop), and a test or benchmark can call
``start()``, ``reload()`` and ``stop()`` itself on its own loop, with port 0.
What a caller may want to swap (the ``State`` class, how often the state is
saved) comes in through the constructor, never by patching this module.

Read top to bottom: the constructor, ``start``, ``run``, ``reload`` (SIGHUP:
the config is read in a worker thread, swapped in on the loop; values read
only on restart are kept), ``stop`` (the shutdown order) and ``persist`` (the
state file: every ``save_every`` seconds, soon after deliveries, at pool
changes and at stop). Errors a user must see at start are ``StartError``;
the CLI turns them into its own messages. Nothing here imports the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from monitor import loop as event_loop
from monitor.beacon import BeaconPolicy, Beacons
from monitor.config import ConfigError, MonitorConfig, Shard, load_config
from monitor.config.reload import restart_only_changes
from monitor.config.yaml_reader import beside_the_loop
from monitor.decisions import Decisions
from monitor.domain import Target
from monitor.ha.decisions import HaDecisions
from monitor.ha.role import HaRole
from monitor.ha.settings import HaSettings, default_instance
from monitor.ha.store import HaError
from monitor.history import History, Limits, open_history, pool_record, report_record
from monitor.moodle.follow import follow
from monitor.moodle.sink import SINK, MoodleSwitch
from monitor.notify import Notifier, event_body
from monitor.ondemand import OnDemand
from monitor.outbox import Outbox
from monitor.runner import Runner, user_agent
from monitor.scheduler import Scheduler, first_round_window
from monitor.selector import Decision, PoolSettings
from monitor.server import make_app, make_status_app
from monitor.server.guard import FdBudget, fd_budget, handler_args, listen
from monitor.sources.watch import Sources
from monitor.state import HISTORY_UNUSABLE, State, load_state, save_state
from monitor.status import Pages

__all__ = ["SAVE_AFTER_DELIVERY", "SAVE_EVERY", "Service", "StartError"]

# The CLI's logger: the service's lines read as they did when serve held them.
log = logging.getLogger("monitor")

# How often serve writes its state file (and at every change of a pool's choice).
SAVE_EVERY = 30.0
# A delivery's result is saved at most this long after it; a burst of
# deliveries costs one write (a crash in between sends those events again).
SAVE_AFTER_DELIVERY = 1.0


class StartError(Exception):
    """The service cannot start (a port it cannot listen on); the message says why."""


@dataclass(frozen=True, slots=True)
class _Read:
    """A config read for a reload, with what it resolves to (made in the worker thread)."""

    spec: Shard | None
    targets: list[Target]
    pools: list[PoolSettings]
    seconds: float


def _read(path: Path, shard: Shard | None) -> tuple[MonitorConfig, _Read]:
    """Read, validate and resolve a config: the slow part of a reload, off the loop."""
    started = time.monotonic()
    with beside_the_loop():
        new = load_config(path)
        spec = shard or new.shard_spec()
        targets, pools = new.fleet(spec)
    return new, _Read(spec, targets, pools, time.monotonic() - started)


class Service:
    """One ``serve``: probing on a schedule, the HTTP ports, reloads and persistence.

    ``path`` is where ``cfg`` was read from (a reload reads it again);
    ``shard`` is the command line's (None: the config's). ``make_state``
    builds the State (called once, on the running loop); ``save_every`` is
    the state file's period.
    """

    # Built by start(), on the running loop.
    state: State
    state_path: Path | None
    sources: Sources
    notifier: Notifier
    pages: Pages
    runner: Runner
    ondemand: OnDemand
    decisions: Decisions
    scheduler: Scheduler
    beacons: Beacons
    _app_runner: web.AppRunner

    def __init__(
        self,
        path: Path,
        cfg: MonitorConfig,
        *,
        host: str,
        port: int,
        shard: Shard | None = None,
        make_state: Callable[..., State] = State,
        save_every: float = SAVE_EVERY,
    ) -> None:
        self.path = path
        self.cfg = cfg
        self.host = host
        self.shard = shard
        self.spec = shard or cfg.shard_spec()
        self.port = port  # the port bound once started (port 0 picks one)
        self.status_port: int | None = None
        self._make_state = make_state
        self._save_every = save_every
        self._stopping = asyncio.Event()  # SIGINT, SIGTERM or request_stop()
        self._built = False  # start got as far as listening: stop has work to undo
        self._signals = False
        self._reload: asyncio.Task[None] | None = None
        self._reload_again = False  # a SIGHUP came in while reading
        self._tasks: list[asyncio.Future[None]] = []
        self._soon: list[asyncio.TimerHandle] = []
        self._listening: asyncio.AbstractServer | None = None
        self._status_listening: asyncio.AbstractServer | None = None
        self._status_runner: web.AppRunner | None = None
        self.history: History | None = None
        self._switch: MoodleSwitch | None = None
        self.ha: HaRole | None = None  # with an ha block: leader or follower (monitor.ha)

    # -- start ---------------------------------------------------------------

    async def start(self, *, signals: bool = False) -> None:
        """Build every part, listen, then start probing, the sources and the sinks.

        With ``signals``, SIGINT and SIGTERM stop the service and SIGHUP
        reloads it, from the moment it listens (``run`` asks for this).
        """
        cfg, spec = self.cfg, self.spec
        fds = self._fd_budget()
        # server_sources: the config's servers and those of its sources (files
        # read now, HTTP endpoints once running); they apply changes themselves.
        self.sources = Sources(cfg, user_agent=user_agent(cfg.contact), apply=self._adopt_servers)
        await self.sources.first_reads()  # the Moodle site: its rows are servers too
        targets, pools = self.sources.merged().fleet(spec)
        self.state = state = self._make_state(
            location=cfg.location, shard=str(spec) if spec else None
        )
        state.sources = self.sources.health
        state.set_targets(targets)
        state.set_pools(pools)
        state.outbox = Outbox(max_age=cfg.notify.max_age, max_pending=cfg.notify.max_pending)
        # With HA the database keeps the state (every instance shares it), not a file.
        await self._open_ha()
        self.state_path = None if self.ha is not None else cfg.state_path(spec)
        self.notifier = Notifier(
            state.outbox,
            user_agent=user_agent(cfg.contact),
            command_timeout=cfg.notify.command_timeout,
            save=self.persist_soon,
        )
        self._moodle_switch()
        # The sinks first: the saved outbox keeps the events of those configured.
        self.notifier.configure(cfg.webhooks(), cfg.notify.command)
        if self.state_path is not None:
            # Every member's first probe comes within the first round's window.
            within = max(
                (first_round_window(len(targets), t.interval) for t in targets), default=0.0
            )
            problem = load_state(state, self.state_path, first_probes_within=within)
            if problem:
                log.warning("%s", problem)
        state.command_exits = self.notifier.exits
        self._follow_moodle(None, at_start=True)
        self.history = await self._open_history()
        self.pages = Pages(state, cfg.status, self.history)
        self.runner = Runner(cfg)
        self.ondemand = OnDemand(self.runner, self.sources.merged())
        if self.ha is not None:
            self.decisions = HaDecisions(self.ha, state, notify=self._notify, save=self.persist)
            self.notifier.ready = self.ha.ready
            self.ha.on_lead = self._lead
            if self.ha.scale_out:
                # The heartbeat claims shards; until then this instance probes nothing.
                state.probe_only(frozenset())
                self.ha.on_shards = self._probe_shards
                self.ha.on_verdicts = self._judge_shared
        else:
            self.decisions = Decisions(state, notify=self._notify, save=self.persist)
        self.scheduler = Scheduler(self.runner, state, self.decisions)
        # Users' round trips from the LMS page; ``nearest: users`` pools score by them.
        self.beacons = state.users = Beacons(state, _beacon_policy(cfg))
        app = make_app(state, self.ondemand, self.pages, self.beacons)
        self._app_runner = web.AppRunner(app, access_log=None, **handler_args())
        await self._app_runner.setup()
        if cfg.status.listen is not None:
            status = make_status_app(self.pages, self.beacons)
            self._status_runner = web.AppRunner(status, access_log=None, **handler_args())
            await self._status_runner.setup()
        elif cfg.status.public and not _loopback(self.host):
            log.warning(
                "status.public is on and %s is not a loopback address: /metrics, /probe and "
                "/api/v1 are served there too; set status.listen for the pages and keep "
                'listen.host on loopback (see docs/status-pages.md, "The public view")',
                self.host,
            )
        self._built = True
        await self._listen(fds)
        if signals:
            self._install_signal_handlers()
        self.scheduler.start(self._probed(targets))
        self.sources.start()
        self.notifier.start()  # events a stop left in the outbox go first
        if self.ha is not None:
            self.ha.start()
        self._tasks.append(asyncio.ensure_future(self._keep_saving()))
        part = f" (shard {spec} of the config's {len(cfg.servers)})" if spec else ""
        log.info(
            "probing %d server(s)%s on %s; metrics on http://%s:%d/metrics",
            len(state.targets),
            part,
            event_loop.loop_name(),
            self.host,
            self.port,
        )

    async def _open_ha(self) -> None:
        """With an ha block: connect to its database now (a wrong one is a StartError)."""
        block = self.cfg.ha
        if block is None:
            return
        if self.spec is not None:
            # Every instance shares one state: a static shard would judge other pools' halves.
            raise StartError(
                "ha and shard (or --shard) do not go together: the HA instances share the "
                "servers out by themselves (ha.shards, see docs/ha.md)"
            )
        try:
            password = self.cfg.ha_password()
        except ValueError as exc:
            raise StartError(str(exc)) from None
        settings = HaSettings(
            dsn=block.dsn(),
            password=password,
            lease=block.lease,
            instance=block.instance or default_instance(),
            shards=block.shards,
        )
        role = HaRole(settings, self.state)
        try:
            await role.open()
        except HaError as exc:
            raise StartError(f"ha.database {settings.dsn.shown}: {exc.detail}") from None
        self.ha = self.state.ha = role
        log.info(
            "ha: instance %s on %s (lease %gs); a follower until it takes the lead",
            settings.instance,
            settings.dsn.shown,
            settings.lease,
        )

    def _probed(self, targets: list[Target]) -> list[Target]:
        """The servers this instance probes: all, or with HA scale-out its shards'."""
        ha = self.ha
        return (
            targets if ha is None or not ha.scale_out else [t for t in targets if ha.probes(t.name)]
        )

    def _probe_shards(self) -> None:
        """HA scale-out: the shards this instance holds changed; probe theirs."""
        assert self.ha is not None
        targets = self._probed(list(self.state.targets.values()))
        self.state.probe_only(frozenset(t.name for t in targets))
        self.scheduler.update(targets, takeover=self.ha.settings.heartbeat)

    def _judge_shared(self, servers: list[str]) -> None:
        """The leader read verdicts other instances wrote: judge their pools."""
        now, made = time.time(), []
        for server in servers:
            made.extend(self.state.select(server, now))
        self.decisions.take(made)

    def _lead(self) -> None:
        """This instance took the lead: deliver what the last leader left, judge every pool."""
        self.notifier.start()
        self.decisions.take(self.state.select(None, time.time()))

    def _fd_budget(self) -> FdBudget:
        """Raise the open-file limit and split it between probing and serving (logged)."""
        fds = fd_budget(self.cfg.concurrency + self.cfg.probe.concurrency)
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
        return fds

    async def _open_history(self) -> History | None:
        """The history file, fed each recorded report; None when off or unusable (logged)."""
        cfg, state = self.cfg, self.state
        path = cfg.history_path(self.spec)
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
            # The pool changes the state file kept (saved before any delivery):
            # one decided just before a crash reaches the history now; those
            # already there are not written twice.
            for decision in state.decisions:
                history.add(pool_record(decision))
        return history

    async def _listen(self, fds: FdBudget) -> None:
        """Listen on serve's port, then on status.listen's when set."""
        host, port = self.host, self.port
        try:
            self._listening, self.port = await listen(self._app_runner, host, port, fds.connections)
        except OSError as exc:
            raise StartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        where = self.cfg.status.listen
        if self._status_runner is not None and where is not None:
            try:
                self._status_listening, self.status_port = await listen(
                    self._status_runner, where.host, where.port, fds.connections
                )
            except OSError as exc:
                raise StartError(
                    f"cannot listen on {where.host}:{where.port} (status.listen): {exc.strerror}"
                ) from None
            log.info("status pages (only) on http://%s:%d/", where.host, self.status_port)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self._signals = True

    def _moodle_switch(self) -> bool:
        """Wire the Moodle site (status, following, the switch sink); True if the sinks changed."""
        moodle = self.sources.moodle
        self.state.moodle = None if moodle is None else moodle.status
        if moodle is not None and self._follow_moodle not in moodle.listeners:
            moodle.listeners.append(self._follow_moodle)
        command = None if moodle is None else moodle.spec.switch_command()
        had = SINK in self.notifier.own
        if moodle is None or command is None:
            self.notifier.own.pop(SINK, None)
            self._switch = None
            return had
        self._switch = MoodleSwitch(
            command,
            moodle.status,
            self.state.outbox,
            row_of=moodle.row_of,
            read_back=moodle.reader.active,
        )
        self.notifier.own[SINK] = ("moodle", self._switch.deliver)
        return not had

    def _follow_moodle(self, _: object, *, at_start: bool = False) -> None:
        """After a read: the site pool's choice is Moodle's (monitor.moodle.follow)."""
        moodle = self.sources.moodle
        if moodle is None or (self._switch is not None and self._switch.busy()):
            return
        server = moodle.server_of(moodle.status.active_id)
        state = self.state
        if follow(
            state.pools, state.pool_states, moodle.spec.pool, server, time.time(), at_start=at_start
        ):
            moodle.status.outside_changes_total += 1
            self.persist_soon()

    def _notify(self, decision: Decision) -> None:
        """A pool's new choice: to the sinks (through the outbox) and to the history."""
        urls = {name: target.url for name, target in self.state.targets.items()}
        self.notifier.submit(decision, event_body(decision, self.state.location, urls))
        if self.history is not None:
            self.history.add(pool_record(decision))

    # -- the main loop -------------------------------------------------------

    async def run(self) -> None:
        """What the process runs: start (with signal handlers), wait for a stop, stop."""
        try:
            await self.start(signals=True)
            await self._stopping.wait()
            log.info("stopping")
        finally:
            await self.stop()

    def request_stop(self) -> None:
        """SIGINT or SIGTERM: ``run`` stops the service."""
        self._stopping.set()

    # -- reload --------------------------------------------------------------

    def reload(self) -> asyncio.Task[None]:
        """SIGHUP: read the config off the loop; one more read if one is under way.

        Returns the reload's task (a caller may await it; a signal handler does not).
        """
        if self._reload is not None and not self._reload.done():
            self._reload_again = True
            return self._reload
        self._reload = asyncio.ensure_future(self._reload_now())
        return self._reload

    async def _reload_now(self) -> None:
        """Read (in a worker thread) until no SIGHUP came in meanwhile."""
        while True:
            self._reload_again = False
            try:
                new, read = await asyncio.to_thread(_read, self.path, self.shard)
            except ConfigError as exc:
                self._failed("; ".join(str(p) for p in exc.problems))
            except (MemoryError, RecursionError) as exc:
                self._failed(f"the config is too large or too deeply nested ({type(exc).__name__})")
            except Exception as exc:  # our own bug: say so, keep running
                self._failed(f"{type(exc).__name__}: {exc}", trace=True)
            else:
                try:
                    self._adopt(new, read)
                except Exception as exc:
                    self._failed(f"{type(exc).__name__}: {exc}", trace=True)
            if not self._reload_again:
                return

    def _adopt(self, new: MonitorConfig, read: _Read) -> None:
        """Swap the new config in, all at once, on the loop."""
        started = time.monotonic()
        # Compared with the config the service started with: that is what runs.
        kept = restart_only_changes(self.cfg, new)
        if kept:
            log.warning(
                "config reload: kept the running value of %s (read only on restart)",
                ", ".join(kept),
            )
        state = self.state
        self.pages.settings = new.status
        self.beacons.configure(_beacon_policy(new))
        state.outbox.max_age = new.notify.max_age
        state.outbox.max_pending = new.notify.max_pending
        self.notifier.configure(new.webhooks(), new.notify.command)
        self.notifier.start()
        merged = self.sources.configure(new)
        if self._moodle_switch():
            self.notifier.configure(new.webhooks(), new.notify.command)
            self.notifier.start()
        # Without sources the fleet was worked out in the worker thread already.
        fleet = None if new.server_sources or new.moodle else (read.targets, read.pools)
        targets = self._adopt_servers(merged, fleet)
        state.config_reload_ok = True
        state.config_reload_time = time.time()
        log.info(
            "config reloaded: %d server(s) (read in %.2fs, swapped in %.0f ms)",
            len(targets),
            read.seconds,
            (time.monotonic() - started) * 1000,
        )

    def _adopt_servers(
        self, new: MonitorConfig, fleet: tuple[list[Target], list[PoolSettings]] | None = None
    ) -> list[Target]:
        """Adopt a server list: a reload's, or the sources' when they change."""
        spec = self.shard or new.shard_spec()
        targets, pools = fleet if fleet is not None else new.fleet(spec)
        state = self.state
        state.shard = str(spec) if spec else None
        state.set_targets(targets)
        self.beacons.forget_removed()  # no users' timings of servers gone
        # Judging every pool takes a while in a large fleet: only when they changed.
        if pools != list(state.pools.values()):
            state.set_pools(pools)
            self.decisions.take(state.select(None, time.time()))
        self.ondemand.update(new)
        probed = self._probed(targets)
        if self.state.probed is not None:
            self.state.probe_only(frozenset(t.name for t in probed))
        self.scheduler.update(probed)
        return targets

    def _failed(self, why: str, trace: bool = False) -> None:
        self.state.config_reload_ok = False
        log.error("config reload failed; keeping the running config: %s", why, exc_info=trace)

    # -- stop ----------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything, in order; the state is saved once probing and sinks are done.

        Listening ends first (no new requests), then the signal handlers, a
        reload under way and the saver; then the sources, the scheduler and
        the sinks; then the state file and the history; the HTTP apps last.
        Calling it again does nothing.
        """
        if not self._built:
            return  # start failed before it listened: as before, nothing to undo
        self._built = False
        if self._listening is not None:
            self._listening.close()
        if self._status_listening is not None:
            self._status_listening.close()
        if self._signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signum)
            self._signals = False
        # A reload first: one that finished reading now must not adopt into
        # sources or a scheduler that are already closed.
        pending = [t for t in (self._reload, *self._tasks) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.sources.close()
        await self.scheduler.shutdown()
        await self.notifier.close()
        for handle in self._soon:
            handle.cancel()
        self.persist()
        if self.ha is not None:
            await self.ha.close()  # the last changes stored, then the locks let go
        if self.history is not None:
            await self.history.close()
        await self.ondemand.close()
        await self.runner.close()
        await self._app_runner.cleanup()
        if self._status_runner is not None:
            await self._status_runner.cleanup()

    # -- persist -------------------------------------------------------------

    def persist(self) -> None:
        """Write the state file now (when there is one); a failure is logged, never raised.

        With HA the state goes to the database instead (soon, by the leader only)."""
        if self.ha is not None:
            self.ha.changed()
        if self.state_path is None:
            return
        try:
            save_state(self.state, self.state_path)
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or exc
            log.error("cannot save the state to %s: %s", self.state_path, why)

    def persist_soon(self) -> None:
        """Save within SAVE_AFTER_DELIVERY seconds: one write for a burst of deliveries."""
        if self._soon:
            return

        def due() -> None:
            self._soon.clear()
            self.persist()

        self._soon.append(asyncio.get_running_loop().call_later(SAVE_AFTER_DELIVERY, due))

    async def _keep_saving(self) -> None:
        while True:
            await asyncio.sleep(self._save_every)
            self.persist()


def _beacon_policy(cfg: MonitorConfig) -> BeaconPolicy:
    """The ``beacon`` block as ``monitor.beacon`` takes it."""
    block = cfg.beacon
    return BeaconPolicy(
        origins=tuple(block.origins),
        regions=tuple(block.regions),
        window=block.window,
        min_samples=block.min_samples,
        min_prefixes=block.min_prefixes,
        period=block.period,
    )


def _loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
