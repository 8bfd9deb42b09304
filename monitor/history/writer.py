"""The worker thread that writes history: batches, roll-ups, incidents, pruning.

Only this thread writes the file. Records arrive on a bounded queue; the
thread takes what has come within ``FLUSH_EVERY`` (at most ``BATCH``
records) and writes it in one transaction. A failed write is logged and
its batch dropped; after ``MAX_FAILURES`` failures in a row history turns
itself off (logged) and the monitor runs on without it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from monitor.history.records import PoolRecord, ReportRecord
from monitor.history.schema import BUCKET, DAY, day_table, day_tables, ensure_day

__all__ = ["BATCH", "FLUSH_EVERY", "Limits", "Writer"]

log = logging.getLogger("monitor.history")
T = TypeVar("T")

BATCH: Final = 5000
FLUSH_EVERY: Final = 1.0
PRUNE_EVERY: Final = 600.0
MAX_FAILURES: Final = 5


@dataclass(frozen=True, slots=True)
class Limits:
    """How much history is kept."""

    # Reports and 10-minute buckets older than this are dropped (whole UTC days).
    retention: float = 7 * DAY
    # Daily uptime, check changes, incidents and pool events: kept this long.
    keep_events: float = 90 * DAY
    # Reports at most; the oldest days go first.
    max_rows: int = 120_000_000


@dataclass(slots=True)
class _Flush:
    """Put on the queue to learn when what came before it is written."""

    done: threading.Event = field(default_factory=threading.Event)
    # Prune as of this time first (None: no pruning).
    prune_at: float | None = None


Item = ReportRecord | PoolRecord | _Flush | None


def _us(seconds: float | None) -> int | None:
    return None if seconds is None else max(0, min(int(seconds * 1e6), 3_600_000_000))


class Writer:
    """Owns the write connection; ``run`` is the thread's body."""

    def __init__(self, db: sqlite3.Connection, limits: Limits, queue_max: int) -> None:
        self.db = db
        self.limits = limits
        self.queue: queue.Queue[Item] = queue.Queue(queue_max)
        self.failures = 0
        self.off = False
        self.dropped = 0
        self.written = 0
        self.ids: dict[str, int] = {}
        # The latest reason of each (server, check), and each server's open incident.
        self.last: dict[tuple[int, str], str] = {}
        self.open: dict[int, int] = {}
        self._load()
        # When pruning last ran (monotonic); the thread prunes first thing.
        self.pruned_at = time.monotonic()
        # Rounds of the thread in a row that raised (see ``run``).
        self.rounds_failed = 0
        # Servers forgotten by pruning (no rows left), since start.
        self.servers_pruned = 0
        # Failed writes, prunes and rounds of the thread, since start.
        self.errors = 0

    def _load(self) -> None:
        """What the thread keeps in memory, read from the file (again after a
        failed write, whose rollback took back servers and changes it had noted)."""
        db = self.db
        self.ids = {name: sid for sid, name in db.execute("SELECT id, name FROM servers")}
        self.last = {
            (sid, name): reason
            for sid, name, reason, _ in db.execute(
                "SELECT server, name, reason, max(at) FROM checks GROUP BY server, name"
            )
        }
        self.open = {
            sid: iid
            for iid, sid in db.execute("SELECT id, server FROM incidents WHERE end IS NULL")
        }

    # -- the thread -----------------------------------------------------------

    def run(self) -> None:
        """Prune at start, then write batches (and prune every ``PRUNE_EVERY``
        seconds, records or not) until ``None`` comes.

        Nothing that goes wrong in a round stops the thread: it is logged,
        and after ``MAX_FAILURES`` failed rounds in a row history turns
        itself off (the thread still answers flushes and the stop).
        """
        self._guarded(self.prune, time.time())
        while True:
            wait = max(0.0, self.pruned_at + PRUNE_EVERY - time.monotonic())
            try:
                item = self.queue.get(timeout=wait)
            except queue.Empty:
                self._guarded(self.prune, time.time())
                continue
            batch = self._gather(item)
            try:
                self._guarded(self._round, batch)
            finally:
                for i in batch:
                    if isinstance(i, _Flush):
                        i.done.set()
            if batch[-1] is None:
                with contextlib.suppress(sqlite3.Error):
                    self.db.close()
                return

    def _gather(self, item: Item) -> list[Item]:
        """``item`` and what comes within ``FLUSH_EVERY`` (up to a flush or the stop)."""
        batch: list[Item] = [item]
        deadline = time.monotonic() + FLUSH_EVERY
        while item is not None and not isinstance(item, _Flush) and len(batch) < BATCH:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self.queue.get(timeout=left)
            except queue.Empty:
                break
            batch.append(item)
        return batch

    def _round(self, batch: list[Item]) -> None:
        self.write([i for i in batch if isinstance(i, ReportRecord | PoolRecord)])
        for i in batch:
            if isinstance(i, _Flush) and i.prune_at is not None:
                self.prune(i.prune_at)
        if time.monotonic() - self.pruned_at > PRUNE_EVERY:
            self.prune(time.time())

    def _guarded(self, step: Callable[[T], None], arg: T) -> None:
        """Run one step of the thread; what it raises is logged, never the thread's end."""
        try:
            step(arg)
        except Exception:
            self._rollback()
            self.rounds_failed += 1
            self.errors += 1
            log.exception("history: the writer failed (%d time(s) in a row)", self.rounds_failed)
            if self.rounds_failed >= MAX_FAILURES and not self.off:
                self.off = True
                log.error(
                    "history: the writer failed %d times in a row; history is off",
                    self.rounds_failed,
                )
        else:
            self.rounds_failed = 0

    def write(self, records: list[ReportRecord | PoolRecord]) -> None:
        if not records or self.off:
            return
        try:
            self.db.execute("BEGIN")
            self._write(records)
            self.db.execute("COMMIT")
        except Exception as exc:  # sqlite3.Error; anything else is our bug, logged as such
            self._rollback()
            with contextlib.suppress(sqlite3.Error):
                self._load()
            self.failures += 1
            self.errors += 1
            self.dropped += len(records)
            log.error(
                "history: cannot write %d record(s): %s",
                len(records),
                exc,
                exc_info=not isinstance(exc, sqlite3.Error),
            )
            if self.failures >= MAX_FAILURES:
                self.off = True
                log.error("history: %d writes failed in a row; history is off", self.failures)
            return
        self.failures = 0
        self.written += len(records)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("ROLLBACK")

    def _id(self, name: str) -> int:
        sid = self.ids.get(name)
        if sid is None:
            cur = self.db.execute("INSERT OR IGNORE INTO servers(name) VALUES (?)", (name,))
            sid = cur.lastrowid
            if not cur.rowcount or sid is None:
                sid = self.db.execute("SELECT id FROM servers WHERE name = ?", (name,)).fetchone()[
                    0
                ]
            self.ids[name] = sid
        return sid

    def _write(self, records: Iterable[ReportRecord | PoolRecord]) -> None:
        db = self.db
        rows: dict[int, list[tuple[object, ...]]] = {}
        buckets: dict[tuple[int, int], list[int]] = {}
        daily: dict[tuple[int, int], list[int]] = {}
        for record in records:
            if isinstance(record, PoolRecord):
                # Once only: start hands the state file's latest changes over
                # again (one decided just before a crash never reached the file).
                db.execute(
                    "INSERT INTO pool_events(pool, at, previous, chosen, reason, detail) "
                    "SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM pool_events "
                    "WHERE pool = ? AND at = ? AND chosen IS ?)",
                    (
                        record.pool,
                        record.at,
                        record.previous,
                        record.chosen,
                        record.reason,
                        record.detail,
                        record.pool,
                        record.at,
                        record.chosen,
                    ),
                )
                continue
            sid = self._id(record.server)
            at = int(record.at)
            ping, connect = _us(record.ping), _us(record.connect)
            rows.setdefault(at // DAY, []).append(
                (sid, at, int(record.up), record.check, record.reason, connect,
                 _us(record.tls), _us(record.first_byte), ping)
            )  # fmt: skip
            latency = ping if ping is not None else connect
            bucket = buckets.setdefault((sid, at - at % BUCKET), [0, 0, 0, 0])
            bucket[0] += record.up
            bucket[1] += 1
            if latency is not None:
                bucket[2] += latency
                bucket[3] += 1
            day = daily.setdefault((sid, at // DAY), [0, 0])
            day[0] += record.up
            day[1] += 1
            self._changes(sid, record)
        for day_number, day_rows in rows.items():
            name = ensure_day(db, day_number)
            before = db.total_changes
            db.executemany(f"INSERT OR REPLACE INTO {name} VALUES (?,?,?,?,?,?,?,?,?)", day_rows)
            db.execute(
                "UPDATE days SET rows = rows + ? WHERE day = ?",
                (db.total_changes - before, day_number),
            )
        db.executemany(
            "INSERT INTO buckets VALUES (?,?,?,?,?,?) ON CONFLICT(server, at) DO UPDATE SET "
            "up = up + excluded.up, total = total + excluded.total, "
            "lat_sum = lat_sum + excluded.lat_sum, lat_n = lat_n + excluded.lat_n",
            [(s, a, *v) for (s, a), v in buckets.items()],
        )
        db.executemany(
            "INSERT INTO daily VALUES (?,?,?,?) ON CONFLICT(server, day) DO UPDATE SET "
            "up = up + excluded.up, total = total + excluded.total",
            [(s, d, *v) for (s, d), v in daily.items()],
        )

    def _changes(self, sid: int, record: ReportRecord) -> None:
        """Check changes, and an incident opened or closed."""
        for name, reason in record.checks:
            if self.last.get((sid, name)) != reason:
                self.last[(sid, name)] = reason
                self.db.execute(
                    "INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?)",
                    (sid, name, record.at, reason),
                )
        open_id = self.open.get(sid)
        if record.up and open_id is not None:
            self.db.execute("UPDATE incidents SET end = ? WHERE id = ?", (record.at, open_id))
            del self.open[sid]
        elif not record.up and open_id is None:
            cur = self.db.execute(
                "INSERT INTO incidents(server, start, name, reason, detail) VALUES (?,?,?,?,?)",
                (sid, record.at, record.check or "", record.reason or "", record.detail or ""),
            )
            if cur.lastrowid is not None:
                self.open[sid] = cur.lastrowid

    # -- pruning --------------------------------------------------------------

    def prune(self, now: float) -> None:
        """Drop what is older than the limits; logged when it fails."""
        self.pruned_at = time.monotonic()
        if self.off:
            return
        try:
            self._prune(now)
        except Exception as exc:  # sqlite3.Error; anything else is our bug or a bad file
            self._rollback()
            self.errors += 1
            log.error("history: cannot prune: %s", exc, exc_info=not isinstance(exc, sqlite3.Error))

    def _prune(self, now: float) -> None:
        db, limits = self.db, self.limits
        oldest_day = int((now - limits.retention) // DAY)
        days = day_tables(db)
        counts = dict(db.execute("SELECT day, rows FROM days").fetchall())
        total = sum(counts.values())
        drop = [d for d in days if d < oldest_day]
        for day in days:
            if day in drop:
                total -= counts[day]
        for day in days:  # the row limit: oldest days first, never today's
            if total <= limits.max_rows or day == days[-1]:
                break
            if day not in drop:
                drop.append(day)
                total -= counts[day]
        db.execute("BEGIN")
        for day in drop:
            db.execute(f"DROP TABLE IF EXISTS {day_table(day)}")
            db.execute("DELETE FROM days WHERE day = ?", (day,))
        kept_from = min((d for d in days if d not in drop), default=oldest_day) * DAY
        # Server by server along the primary key: no scan of the whole table.
        each = "WHERE server IN (SELECT id FROM servers) AND"
        db.execute(f"DELETE FROM buckets {each} at < ?", (max(kept_from, now - limits.retention),))
        events_from = now - limits.keep_events
        db.execute(f"DELETE FROM daily {each} day < ?", (int(events_from // DAY),))
        # A check's newest change before the cutoff stays: it says what the
        # check was from then on (a server ok for months has one row per check).
        db.execute(
            "DELETE FROM checks WHERE at < ? AND EXISTS (SELECT 1 FROM checks AS newer "
            "WHERE newer.server = checks.server AND newer.name = checks.name "
            "AND newer.at > checks.at AND newer.at <= ?)",
            (events_from, events_from),
        )
        db.execute("DELETE FROM incidents WHERE end IS NOT NULL AND end < ?", (events_from,))
        db.execute("DELETE FROM pool_events WHERE at < ?", (events_from,))
        gone = self._gone_servers([d for d in days if d not in drop])
        for sid in gone:
            for table in ("checks", "incidents", "buckets", "servers"):
                db.execute(
                    f"DELETE FROM {table} WHERE {'id' if table == 'servers' else 'server'} = ?",
                    (sid,),
                )
        db.execute("COMMIT")
        if gone:
            self._forget(set(gone))
        if drop:
            log.info("history: dropped %d day(s) of reports", len(drop))

    def _gone_servers(self, days: list[int]) -> list[int]:
        """Servers with no report left (no daily roll-up, none in a kept day):
        removed from the fleet longer ago than the limits keep anything."""
        candidates = [
            sid
            for (sid,) in self.db.execute(
                "SELECT id FROM servers WHERE NOT EXISTS "
                "(SELECT 1 FROM daily WHERE daily.server = servers.id)"
            )
        ]
        for day in days:
            if not candidates:
                break
            table = day_table(day)
            candidates = [
                sid
                for sid in candidates
                if self.db.execute(
                    f"SELECT 1 FROM {table} WHERE server = ? LIMIT 1", (sid,)
                ).fetchone()
                is None
            ]
        return candidates

    def _forget(self, gone: set[int]) -> None:
        """Drop the pruned servers from what the thread keeps in memory."""
        self.ids = {name: sid for name, sid in self.ids.items() if sid not in gone}
        self.last = {key: reason for key, reason in self.last.items() if key[0] not in gone}
        self.open = {sid: iid for sid, iid in self.open.items() if sid not in gone}
        self.servers_pruned += len(gone)
        log.info("history: forgot %d server(s) with no report left", len(gone))
