"""The failover outbox: events kept until every sink has taken them.

Every pool decision becomes one event with an id. It is written down (the
state file holds the outbox) before any delivery starts, and each sink (each
webhook, the command) has its own queue of the events it has not taken yet,
in order. A queue survives a stop and a crash; delivery is at least once, and
the id lets a receiver drop a duplicate. A sink that keeps failing is bounded:
past ``max_pending`` events, or failing for longer than ``max_age``, it drops
its oldest events, each with a log line and a count.

Pure bookkeeping, no I/O: ``monitor.notify`` delivers, the state file keeps.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

__all__ = ["RESULTS", "Event", "Outbox"]

log = logging.getLogger("monitor.notify")

# What became of one delivery attempt (``jitsi_monitor_outbox_deliveries_total{result}``):
# taken by the sink; failed, to be tried again; refused by the receiver (a 4xx,
# not tried again); skipped for the command because a newer event of the same
# pool came first; dropped by the outbox's bounds.
RESULTS: Final = ("delivered", "failed", "refused", "superseded", "dropped")
# Bounds of what a state file may bring back.
_MAX_ID = 128
_MAX_RESTORED = 100_000


@dataclass(frozen=True, slots=True)
class Event:
    """One change of a pool's choice, as every sink gets it."""

    id: str
    pool: str
    at: float
    body: dict[str, Any]  # JSON-ready, with the id in it


@dataclass(slots=True)
class _Queue:
    label: str  # for logs and metrics: never a webhook's path (it may hold a secret)
    pending: deque[str] = field(default_factory=deque)
    failing_since: float | None = None


class Outbox:
    """Events and, per sink, the ids it has still to take."""

    def __init__(self, max_age: float = 86400.0, max_pending: int = 1000) -> None:
        self.max_age = max_age
        self.max_pending = max_pending
        self.events: dict[str, Event] = {}
        self.queues: dict[str, _Queue] = {}
        self.results: Counter[tuple[str, str]] = Counter()  # (sink label, result)

    # -- sinks -----------------------------------------------------------------

    def set_sinks(self, sinks: dict[str, str]) -> None:
        """Adopt the configured sinks (key -> label); a removed sink's queue goes."""
        for key in list(self.queues):
            if key not in sinks:
                queue = self.queues.pop(key)
                if queue.pending:
                    # A changed webhook URL is another sink: count them as dropped.
                    self.results[queue.label, "dropped"] += len(queue.pending)
                    log.error(
                        "%s is no longer configured: %d event(s) it had not taken are dropped",
                        queue.label,
                        len(queue.pending),
                    )
        for key, label in sinks.items():
            self.queues.setdefault(key, _Queue(label)).label = label
        self._collect()

    # -- events ----------------------------------------------------------------

    def add(self, pool: str, at: float, body: dict[str, Any]) -> Event:
        """A new event, queued for every sink; its id goes into its body."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at))
        event_id = f"{stamp}-{pool}-{secrets.token_hex(4)}"
        event = Event(event_id, pool, at, {**body, "id": event_id})
        self.events[event_id] = event
        for key, queue in self.queues.items():
            queue.pending.append(event_id)
            self._bound(key, at)
        self._collect()
        return event

    def head(self, key: str) -> Event | None:
        """The oldest event ``key`` has not taken."""
        queue = self.queues.get(key)
        while queue is not None and queue.pending:
            event = self.events.get(queue.pending[0])
            if event is not None:
                return event
            queue.pending.popleft()  # cannot happen; never deliver nothing
        return None

    def newer_of_pool(self, key: str, event: Event) -> Event | None:
        """The newest pending event of the same pool after ``event``, if any."""
        queue = self.queues.get(key)
        if queue is None:
            return None
        for event_id in reversed(queue.pending):
            if event_id == event.id:
                return None
            newer = self.events.get(event_id)
            if newer is not None and newer.pool == event.pool:
                return newer
        return None

    def finish(self, key: str, event: Event, result: str) -> None:
        """``key`` is done with ``event`` (taken, refused or superseded)."""
        queue = self.queues.get(key)
        if queue is None:
            return
        if queue.pending and queue.pending[0] == event.id:
            queue.pending.popleft()
        elif event.id in queue.pending:
            queue.pending.remove(event.id)
        if result != "failed":
            queue.failing_since = None
        self.results[queue.label, result] += 1
        self._collect()

    def failed(self, key: str, now: float) -> list[Event]:
        """An attempt of ``key`` failed; returns the events its bounds dropped."""
        queue = self.queues.get(key)
        if queue is None:
            return []
        if queue.failing_since is None:
            queue.failing_since = now
        self.results[queue.label, "failed"] += 1
        return self._bound(key, now)

    def _bound(self, key: str, now: float) -> list[Event]:
        queue = self.queues[key]
        dropped: list[Event] = []
        while queue.pending:
            event = self.events.get(queue.pending[0])
            too_many = len(queue.pending) > self.max_pending
            too_old = (
                event is not None
                and queue.failing_since is not None
                and now - queue.failing_since > self.max_age
                and now - event.at > self.max_age
            )
            if not (too_many or too_old or event is None):
                break
            queue.pending.popleft()
            if event is not None:
                dropped.append(event)
                self.results[queue.label, "dropped"] += 1
                why = "more than max_pending" if too_many else "failing for longer than max_age"
                log.error(
                    "%s: event %s (pool %s) dropped undelivered: %s",
                    queue.label,
                    event.id,
                    event.pool,
                    why,
                )
        if dropped:
            self._collect()
        return dropped

    def _collect(self) -> None:
        """Forget events no sink waits for."""
        waiting = {i for q in self.queues.values() for i in q.pending}
        for event_id in list(self.events):
            if event_id not in waiting:
                del self.events[event_id]

    # -- what it looks like now ------------------------------------------------

    def pending(self) -> dict[str, tuple[int, float | None]]:
        """Per sink label: how many events wait, and since when the oldest (Unix time)."""
        out: dict[str, tuple[int, float | None]] = {}
        for queue in self.queues.values():
            oldest = self.events.get(queue.pending[0]) if queue.pending else None
            out[queue.label] = (len(queue.pending), oldest.at if oldest else None)
        return out

    # -- persistence -----------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """What the state file keeps."""
        return {
            "events": [
                {"id": e.id, "pool": e.pool, "at": e.at, "body": e.body}
                for e in self.events.values()
            ],
            "queues": {
                key: {"pending": list(q.pending), "failing_since": q.failing_since}
                for key, q in self.queues.items()
            },
        }

    def restore(self, raw: object) -> str | None:
        """Take back what ``dump`` wrote, for the sinks configured now (set_sinks
        first). Returns a problem to log, or None; anything malformed is skipped."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            return "the saved outbox is not a mapping; it is ignored"
        events = raw.get("events")
        queues = raw.get("queues")
        if not isinstance(events, list) or not isinstance(queues, dict):
            return "the saved outbox is malformed; it is ignored"
        kept: dict[str, Event] = {}
        for item in events[:_MAX_RESTORED]:
            event = _event(item)
            if event is not None:
                kept[event.id] = event
        skipped = 0
        for key, saved in queues.items():
            queue = self.queues.get(key)
            if queue is None or not isinstance(saved, dict):
                skipped += 1
                continue
            ids = saved.get("pending")
            for event_id in ids[:_MAX_RESTORED] if isinstance(ids, list) else ():
                if isinstance(event_id, str) and event_id in kept:
                    queue.pending.append(event_id)
                    self.events.setdefault(event_id, kept[event_id])
            since = saved.get("failing_since")
            if _finite(since):
                queue.failing_since = float(since)
        for key in self.queues:
            self._bound(key, time.time())
        self._collect()
        if skipped:
            return f"the saved outbox names {skipped} sink(s) no longer configured; skipped"
        return None


def _event(item: object) -> Event | None:
    if not isinstance(item, dict):
        return None
    event_id, pool, at, body = item.get("id"), item.get("pool"), item.get("at"), item.get("body")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= _MAX_ID):
        return None
    if not (isinstance(pool, str) and isinstance(body, dict) and _finite(at)):
        return None
    return Event(event_id, pool, float(at), {**body, "id": event_id})


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
