"""The history file's tables, and opening it: a bad file is moved aside.

Reports go to one table per UTC day (``reports_YYYYMMDD``), keyed by server
and time: pruning a day is a ``DROP TABLE``, never a scan of the whole
history. Beside them, small tables the pages read:

- ``buckets``: per server and 10 minutes, reports up and in all, and the sum
  of the headline latency (XMPP ping, else TCP connect), for the 24 h / 7 d
  uptime and the sparkline;
- ``daily``: per server and UTC day, reports up and in all (30 d uptime);
- ``checks``: each change of a check's reason (the per-check timeline);
- ``incidents``: down periods with the first failure's check, reason, detail;
- ``pool_events``: each change of a pool's choice;
- ``days``: rows in each day's table (for ``history.max_rows``).

Times are Unix seconds; timings are whole microseconds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Final

from monitor.statefile import move_aside

__all__ = [
    "BUCKET",
    "DAY",
    "VERSION",
    "BadFile",
    "connect",
    "day_table",
    "day_tables",
    "ensure_day",
    "lock",
    "open_file",
]

log = logging.getLogger("monitor.history")

VERSION: Final = "1"
DAY: Final = 86400
# Seconds of one row of ``buckets``.
BUCKET: Final = 600

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS servers(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS days(day INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS buckets(
    server INTEGER NOT NULL, at INTEGER NOT NULL, up INTEGER NOT NULL,
    total INTEGER NOT NULL, lat_sum INTEGER NOT NULL, lat_n INTEGER NOT NULL,
    PRIMARY KEY(server, at)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily(
    server INTEGER NOT NULL, day INTEGER NOT NULL, up INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY(server, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checks(
    server INTEGER NOT NULL, name TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY(server, name, at)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incidents(
    id INTEGER PRIMARY KEY, server INTEGER NOT NULL, start REAL NOT NULL, end REAL,
    name TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_by_server ON incidents(server, start);
CREATE TABLE IF NOT EXISTS pool_events(
    id INTEGER PRIMARY KEY, pool TEXT NOT NULL, at REAL NOT NULL, previous TEXT,
    chosen TEXT, reason TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pool_events_by_pool ON pool_events(pool, at);
"""


class BadFile(Exception):
    """The history file cannot be used (locked by another process, not a
    database, of another version, unreadable)."""


def day_table(day: int) -> str:
    """The table of UTC day number ``day`` (days since 1970-01-01)."""
    return "reports_" + time.strftime("%Y%m%d", time.gmtime(day * DAY))


def ensure_day(db: sqlite3.Connection, day: int) -> str:
    """Create the table of ``day`` when missing; its name."""
    name = day_table(day)
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {name}("
        "server INTEGER NOT NULL, at INTEGER NOT NULL, up INTEGER NOT NULL, "
        "name TEXT, reason TEXT, connect INTEGER, tls INTEGER, first_byte INTEGER, "
        "ping INTEGER, PRIMARY KEY(server, at)) WITHOUT ROWID"
    )
    db.execute("INSERT OR IGNORE INTO days(day, rows) VALUES (?, 0)", (day,))
    return name


def day_tables(db: sqlite3.Connection) -> list[int]:
    """The days that have a table, oldest first."""
    return [row[0] for row in db.execute("SELECT day FROM days ORDER BY day")]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the history file (WAL: pages read while the writer writes)."""
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
    else:
        db = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 5000")
    return db


def _prepare(path: Path) -> sqlite3.Connection:
    db = connect(path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_TABLES)
        row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta(key, value) VALUES ('version', ?)", (VERSION,))
        elif row[0] != VERSION:
            raise BadFile(f"history version {row[0]!r}, this monitor writes {VERSION!r}")
    except BaseException:
        db.close()
        raise
    return db


def lock(path: Path) -> int:
    """Hold ``NAME.lock`` beside the file: two monitors must not write one history.

    Returns the descriptor to keep open (closing it lets go of the lock).
    """
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BadFile(f"{path} is in use by another monitor") from None
    return fd


def open_file(path: Path) -> sqlite3.Connection:
    """Open (or create) the history file for writing.

    A file that is not an SQLite database (or whose first pages are
    damaged) or of another version is moved aside (``NAME.corrupt-TIME``,
    logged, as a bad state file is) and a new one is made. A file busy in
    another process, or one that cannot be created at all, raises
    ``BadFile`` (the caller runs without history). Damage deeper in the
    file is not looked for here (that reads the whole file); it shows as
    failing writes (see ``writer``).
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BadFile(f"{path} is not a regular file")
    try:
        return _prepare(path)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BadFile(f"{path} is in use by another process ({exc})") from None
        if "unable to open" in str(exc):
            raise BadFile(f"cannot open {path} ({exc})") from None
        why = str(exc)
    except (sqlite3.DatabaseError, BadFile) as exc:
        why = str(exc)
    aside = move_aside(path, why, what="history file")
    if aside is None:
        raise BadFile(f"{path} cannot be used ({why}) and cannot be moved aside")
    try:
        for suffix in ("-wal", "-shm"):  # a damaged file's journal must not be replayed
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                os.replace(extra, aside.with_name(aside.name + suffix))
        return _prepare(path)
    except (OSError, sqlite3.Error, BadFile) as exc:
        raise BadFile(f"cannot make a new history file at {path}: {exc}") from None
