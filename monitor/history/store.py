"""``History``: what ``serve`` holds. Records are queued on the loop (cheap,
never blocking); the writer thread writes them; pages read in a thread of
their own with a read-only connection.

When the file cannot be used, ``open_history`` logs why and returns None:
the monitor runs without history (see ``schema.open_file`` for a damaged
file, which is moved aside and replaced).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from monitor.history.records import PoolRecord, ReportRecord
from monitor.history.schema import BadFile, connect, lock, open_file
from monitor.history.writer import Limits, Writer, _Flush

__all__ = ["QUEUE_MAX", "History", "open_history"]

log = logging.getLogger("monitor.history")

# Records waiting at most (some 10 s of a 10,000-server fleet's bursts):
# more are dropped and counted, never queued without bound.
QUEUE_MAX: Final = 100_000

T = TypeVar("T")


class History:
    """The history file of one monitor: ``add`` on the loop, ``read`` off it."""

    def __init__(self, path: Path, db: sqlite3.Connection, limits: Limits, lock_fd: int) -> None:
        self.path = path
        self.limits = limits
        self._lock_fd = lock_fd
        self._writer = Writer(db, limits, QUEUE_MAX)
        self._thread = threading.Thread(target=self._writer.run, name="history-writer", daemon=True)
        self._thread.start()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="history-reader")
        self._read_db: sqlite3.Connection | None = None
        self._warned = False
        self._queue_full = 0
        self.closed = False

    @property
    def dropped(self) -> int:
        """Records not written: the queue was full, or their write failed."""
        return self._writer.dropped + self._queue_full

    @property
    def errors(self) -> int:
        """Failed writes, prunes and rounds of the writer since start (each logged)."""
        return self._writer.errors

    @property
    def servers_pruned(self) -> int:
        """Servers forgotten by pruning (no report left) since start."""
        return self._writer.servers_pruned

    @property
    def on(self) -> bool:
        """Whether records are written: not turned off, not closed, the writer alive."""
        return not self._writer.off and not self.closed and self._thread.is_alive()

    def add(self, record: ReportRecord | PoolRecord) -> None:
        """Queue a record (on the loop; never blocks)."""
        if not self.on:
            return
        try:
            self._writer.queue.put_nowait(record)
        except queue.Full:
            # Counted here, on the loop; the writer thread counts its own
            # (one writer per counter: += is not atomic across threads).
            self._queue_full += 1
            if not self._warned:
                self._warned = True
                log.warning("history: the writer is behind; records are dropped")

    async def flush(self, prune_at: float | None = None) -> None:
        """Wait until every record queued so far is written (and history
        pruned as of ``prune_at``, when given)."""
        if self.closed or not self._thread.is_alive():
            return
        marker = _Flush(prune_at=prune_at)

        def put_and_wait() -> None:
            self._writer.queue.put(marker)
            while not marker.done.wait(1) and self._thread.is_alive():
                pass

        await asyncio.to_thread(put_and_wait)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``query`` with the read connection, in the reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._query, query)

    def _query(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._read_db is None:
            self._read_db = connect(self.path, readonly=True)
        return query(self._read_db)

    async def close(self) -> None:
        """Write what is queued, then stop the threads and let go of the file."""
        if self.closed:
            return
        self.closed = True

        def stop_writer() -> None:
            while self._thread.is_alive():
                try:
                    self._writer.queue.put(None, timeout=1)
                    break
                except queue.Full:
                    continue
            self._thread.join()

        await asyncio.to_thread(stop_writer)

        def close_reader() -> None:
            if self._read_db is not None:
                self._read_db.close()

        await asyncio.get_running_loop().run_in_executor(self._reader, close_reader)
        self._reader.shutdown()
        os.close(self._lock_fd)


def open_history(path: Path, limits: Limits) -> History | None:
    """Open the history file, or log why not and return None (history off).

    Blocking (it may check and create the file): call it from a thread.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = lock(path)
    except (OSError, BadFile) as exc:
        log.error("history is off: %s", getattr(exc, "strerror", None) or exc)
        return None
    try:
        db = open_file(path)
    except BadFile as exc:
        os.close(fd)
        log.error("history is off: %s", exc)
        return None
    return History(path, db, limits, fd)
