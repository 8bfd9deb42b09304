"""This instance's role: the election loop, the leader's deadline, the fenced writes.

One task runs the heartbeat every ``settings.heartbeat`` seconds on the lock
connection. A follower tries the leader's lock each time; when it gets it, it
bumps the epoch, adopts the shared state the last leader wrote (pool choices,
timers, the latest decisions, the outbox with its event ids) and leads. A
leader confirms it still holds the lock and that the epoch is still its own.

A leader acts (decides, stores, lets the sinks deliver) only while its last
confirmed heartbeat began less than ``settings.deadline`` ago, by this
process's monotonic clock: a leader cut from the database, or paused, stops by
itself before the server can free its lock (``settings`` says why the order
holds). Its writes carry its epoch and are refused once another leader has
taken a newer one (``store.Store.write_state``).

An event reaches a sink only once the state that holds it is stored
(``ready``): an event lost with a dying leader was never delivered, and the
next leader decides that pool again from its own probes. Delivery is at least
once: a delivery whose end was not stored yet is made again by the next leader.

With scale-out (``settings.shards`` above 1) every heartbeat also claims
shards up to this instance's fair share of the live instances (a session
advisory lock each, so a dead instance's shards are free as soon as its
session ends) and lets go of what is over it; ``on_shards`` tells the service
which servers to probe. Each instance writes the verdicts of the servers it
probes in one batch a heartbeat (``verdicts``); the leader reads those written
since its last look and judges the pools from them (``on_verdicts``). An
instance cut off from the database keeps probing the shards it had (duplicates
over silence); the others take them once its session ends.

A follower keeps probing; its own judgement of the pools is dropped
(``decisions.HaDecisions``) and the pools show the leader's choice, read from
the database whenever the leader writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from monitor.ha.settings import HaSettings
from monitor.ha.shards import claim_order, fair_share, shard_of
from monitor.ha.store import HaError, Store
from monitor.ha.verdicts import report_of, verdict_text
from monitor.selector import PoolState
from monitor.state import State, restore_decisions, restore_pools, restore_rtts, state_data

__all__ = ["HaRole"]

log = logging.getLogger("monitor.ha")


class HaRole:
    """Leader or follower; ``open`` (errors a user must see), ``start``, ``close``."""

    def __init__(
        self,
        settings: HaSettings,
        state: State,
        make_store: Callable[[HaSettings], Store] = Store,
    ) -> None:
        self.settings = settings
        self.state = state
        self._make_store = make_store  # a test's stand-in for the database
        self.role: Literal["leader", "follower"] = "follower"
        self.epoch = 0  # this leader's epoch; a follower shows the leader's
        self.leader = ""  # the leading instance's name, as the database says
        self.instances = 0
        self.database_up = False
        self.refused_writes = 0
        self.on_lead: Callable[[], None] | None = None
        self._store: Store | None = None
        self._confirmed = -math.inf  # monotonic start of the last confirmed heartbeat
        self._want = 0  # changes asked to be stored
        self._written = 0  # changes stored
        self._dirty = asyncio.Event()
        self._progress = asyncio.Event()
        self._seen_seq = -1
        self._leader_pools: dict[str, PoolState] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._down_logged = False
        # Scale-out: the shard locks this database session holds, the shards whose
        # servers this instance probes (kept while cut off), the servers whose
        # verdicts wait to be written, and how far the leader has read the others'.
        self.scale_out = settings.shards > 1
        self.on_shards: Callable[[], None] | None = None
        self.on_verdicts: Callable[[list[str]], None] | None = None
        self._held: set[int] = set()
        self._probing: frozenset[int] = frozenset()
        self._unwritten: set[str] = set()
        self._verdicts_seen = 0
        self._verdicts_from = 0
        self._verdict_at: dict[str, int] = {}
        self._shard_of: dict[str, int] = {}
        self._shard_of_targets: object = None
        if self.scale_out:
            state.listeners.append(self._recorded)

    @property
    def instance(self) -> str:
        return self.settings.instance

    @property
    def shards(self) -> list[int]:
        """The shards whose servers this instance probes."""
        if not self.scale_out:
            return [0]  # without scale-out every instance probes every server
        return sorted(self._probing)

    @property
    def shard_count(self) -> int:
        return self.settings.shards

    def probes(self, server: str) -> bool:
        """Whether this instance probes ``server`` now."""
        return not self.scale_out or self._shard(server) in self._probing

    def _recorded(self, server: str) -> None:
        self._unwritten.add(server)  # its verdict goes out at the next heartbeat

    def _shard(self, server: str) -> int:
        targets = self.state.targets
        if targets is not self._shard_of_targets:  # set_targets replaces the dict
            self._shard_of = shard_of(targets, self.settings.shards)
            self._shard_of_targets = targets
        return self._shard_of.get(server, -1)

    # -- start and stop ------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check the session, create the table, claim the instance's name;
        HaError when the database cannot be used (a clear error at start)."""
        store = self._make_store(self.settings)
        try:
            await asyncio.wait_for(store.open(), self.settings.lease)
        except TimeoutError:
            await store.close()
            raise HaError(
                "timeout", f"{self.settings.dsn.shown} did not answer within the lease"
            ) from None
        except BaseException:
            await store.close()
            raise
        self._store = store
        self.database_up = True

    def start(self) -> None:
        """The heartbeat and the writer, on the running loop."""
        self._tasks = [
            asyncio.ensure_future(self._beat()),
            asyncio.ensure_future(self._write()),
        ]

    async def close(self) -> None:
        """Store the last changes (a leader, bounded by its deadline), then let go
        of the locks: another instance leads at its next heartbeat."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.acting() and self._written < self._want:
            try:
                await self._store_once()
            except Exception as exc:  # the next leader goes on from the last stored state
                why = exc.detail if isinstance(exc, HaError) else type(exc).__name__
                log.warning("ha: the last changes were not stored at stop (%s)", why)
        self.role = "follower"
        if self._store is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._store.close(), self.settings.deadline)
            self._store = None

    # -- what the rest of serve asks --------------------------------------------------

    def acting(self) -> bool:
        """Whether this instance may decide and notify now."""
        return self.role == "leader" and time.monotonic() - self._confirmed < self.settings.deadline

    def changed(self) -> None:
        """The state changed (a decision, a delivery): store it soon."""
        self._want += 1
        self._dirty.set()

    async def ready(self) -> bool:
        """For the sinks: True once every change made so far is stored and this
        instance still acts; False when it does not lead (the sink waits)."""
        target = self._want
        while self.acting() and self._written < target:
            await self._progress.wait()
        return self.acting()

    def mirror_pools(self) -> None:
        """A follower's pools show the leader's choices (its own judgement is dropped)."""
        for name in self.state.pool_states:
            self.state.pool_states[name] = self._leader_pools.get(name, PoolState())

    # -- the heartbeat ----------------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database, or our own bug: logged, never fatal
                await self._lost(exc)
            await asyncio.sleep(self.settings.heartbeat)

    async def _tick(self) -> None:
        if self.role == "leader" and not self.acting():
            self._step_down("its lock was not confirmed within its deadline")
        if self._store is None:
            store = self._make_store(self.settings)
            try:
                await self._bounded(store.open())
            except BaseException:
                await store.close()
                raise
            self._store = store
        store = self._store
        started = time.monotonic()
        look = await self._bounded(store.look())
        if not self.database_up or self._down_logged:
            log.warning("ha: the database %s answers again", self.settings.dsn.shown)
        self.database_up, self._down_logged = True, False
        self.instances = look.instances
        if self.role == "leader":
            if look.holding and look.epoch == self.epoch:
                self._confirmed = started
                self._signal()
            else:
                self._step_down(
                    f"epoch {look.epoch} belongs to {look.leader or 'another instance'}"
                )
        if self.role != "leader":
            self.epoch, self.leader = look.epoch, look.leader
            taken = await self._bounded(store.try_lead())
            if taken is not None:
                epoch, data = taken
                self._lead(epoch, data, started)
            elif look.seq != self._seen_seq:
                seq, _, data = await self._bounded(store.read_state())
                self._mirror(data)
                self._seen_seq = seq
        if self.scale_out:
            await self._scale(store, look.instances)

    # -- scale-out ----------------------------------------------------------------------

    async def _scale(self, store: Store, instances: int) -> None:
        """Claim or let go of shards, write this instance's verdicts, and (the
        leader) read the others'."""
        count = self.settings.shards
        fair = fair_share(count, instances)
        if len(self._held) > fair:
            extra = sorted(self._held)[fair:]
            await self._bounded(store.release(extra))
            self._held.difference_update(extra)
        elif len(self._held) < fair:
            order = claim_order(count, self.instance, self._held)
            self._held.update(await self._bounded(store.claim(order, fair - len(self._held))))
        if frozenset(self._held) != self._probing:
            log.info(
                "ha: %s probes shards %s of %d (%d instance(s))",
                self.instance,
                sorted(self._held) or "none",
                count,
                instances,
            )
            self._probing = frozenset(self._held)
            if self.on_shards is not None:
                self.on_shards()
        await self._write_verdicts(store)
        if self.acting():
            await self._read_verdicts(store)

    async def _write_verdicts(self, store: Store) -> None:
        """This instance's new verdicts, in one statement."""
        state, rows = self.state, []
        names, self._unwritten = self._unwritten, set()
        for server in names:
            report, shard = state.reports.get(server), self._shard(server)
            if report is not None and shard in self._held:
                rows.append((server, shard, verdict_text(report), state.score(server)))
        try:
            await self._bounded(store.write_verdicts(rows))
        except BaseException:
            self._unwritten.update(names)  # written at the next heartbeat
            raise

    async def _read_verdicts(self, store: Store) -> None:
        """The verdicts the others wrote since the last look, for the leader's pools."""
        rows = await self._bounded(store.read_verdicts(self._verdicts_from))
        # ``at`` is taken when a write starts, and writes commit in their own
        # order: a row may appear below what the last read saw. So each read
        # starts where the one before the last ended; what was seen is skipped.
        self._verdicts_from = self._verdicts_seen
        self._verdicts_seen = max((row[3] for row in rows), default=self._verdicts_seen)
        state, changed, seen = self.state, [], self._verdict_at
        for server, text, score, at in rows:
            if at <= seen.get(server, 0):
                continue  # read already
            seen[server] = at
            if server not in state.targets or self.probes(server):
                continue  # removed meanwhile, or this instance's own report is the news
            verdict = report_of(server, text, score)
            if verdict is None:
                log.warning("ha: the stored verdict of %s is not usable; skipped", server)
                continue
            state.shared[server] = verdict
            changed.append(server)
        if changed and self.on_verdicts is not None:
            self.on_verdicts(changed)

    async def _bounded(self, step: Coroutine[Any, Any, Any]) -> Any:
        """A database step, within the leader's deadline (a follower: the lease)."""
        if self.role == "leader":
            left = self._confirmed + self.settings.deadline - time.monotonic()
        else:
            left = self.settings.lease
        return await asyncio.wait_for(step, max(0.1, left))

    async def _lost(self, exc: BaseException) -> None:
        why = exc.detail if isinstance(exc, HaError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TimeoutError):
            why = "no answer in time"
        if not self._down_logged:
            log.error("ha: the database %s: %s", self.settings.dsn.shown, why)
            self._down_logged = True
        self.database_up = False
        if self.role == "leader":
            self._step_down("the database cannot be reached")
        # Its locks end with the session; the shards it had are still probed
        # until it claims anew (duplicates over silence).
        self._held = set()
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(store.close(), 1.0)

    # -- taking and giving up the lead ---------------------------------------------------

    def _lead(self, epoch: int, data: dict[str, Any] | None, started: float) -> None:
        state = self.state
        self.role, self.epoch, self.leader = "leader", epoch, self.instance
        self._confirmed = started
        state.decisions.clear()
        _clear_outbox(state)
        if data is None:
            # The first leader ever: every pool starts afresh (its "initial" event).
            for name in state.pool_states:
                state.pool_states[name] = PoolState()
        else:
            # Our own judgement as a follower is not the leader's: start from what it stored.
            for name in state.pool_states:
                state.pool_states[name] = PoolState()
            # The old leader's smoothed round trips too: the same numbers go on,
            # so another vantage point does not make a "better" switch at takeover.
            restore_rtts(state, data)
            restore_pools(state, data.get("pools"), time.time())
            restore_decisions(state, data.get("decisions"))
            problem = state.outbox.restore(data.get("outbox"))
            if problem:
                log.warning("ha: %s", problem)
        pending = sum(n for n, _ in state.outbox.pending().values())
        log.warning(
            "ha: %s leads (epoch %d); %d event(s) pending from before",
            self.instance,
            epoch,
            pending,
        )
        self._written = self._want  # what it adopted is stored already
        # Every instance's latest verdicts, read at this heartbeat.
        self._verdicts_seen = self._verdicts_from = 0
        self._verdict_at.clear()
        self._signal()
        if self.on_lead is not None:
            self.on_lead()
        self.changed()  # its first write says who wrote the state

    def _step_down(self, why: str) -> None:
        if self.role != "leader":
            return
        log.error("ha: %s steps down (epoch %d): %s", self.instance, self.epoch, why)
        self.role = "follower"
        self._leader_pools = dict(self.state.pool_states)
        _clear_outbox(self.state)  # the next leader delivers from the stored outbox
        self._seen_seq = -1
        self._signal()

    def _mirror(self, data: dict[str, Any] | None) -> None:
        state = self.state
        if data is None:
            return
        for name in state.pool_states:
            state.pool_states[name] = PoolState()
        restore_pools(state, data.get("pools"), time.time())
        self._leader_pools = dict(state.pool_states)
        state.decisions.clear()
        restore_decisions(state, data.get("decisions"))

    def _signal(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- storing the state -----------------------------------------------------------------

    async def _write(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not self.acting():
                continue
            try:
                await self._store_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the heartbeat notices a lost database; try again
                why = exc.detail if isinstance(exc, HaError) else type(exc).__name__
                log.warning("ha: storing the state failed (%s); trying again", why)
                await asyncio.sleep(self.settings.heartbeat)
                self._dirty.set()

    async def _store_once(self) -> None:
        store = self._store
        if store is None:
            raise HaError("unreachable", "not connected")
        seq, epoch = self._want, self.epoch
        data = json.dumps(state_data(self.state))
        ok = await self._bounded(store.write_state(epoch, data))
        if ok:
            self._written = max(self._written, seq)
            self._signal()
            return
        self.refused_writes += 1
        log.error("ha: a write of epoch %d was refused: a newer leader has taken over", epoch)
        self._step_down("a newer epoch exists")


def _clear_outbox(state: State) -> None:
    outbox = state.outbox
    for queue in outbox.queues.values():
        queue.pending.clear()
        queue.failing_since = None
    outbox.events.clear()
