"""What the status pages read from the history file (run in the reader thread).

Each function takes the read connection and returns plain frozen values.
Every query is bounded by a server (or a pool) and a time window, so that a
page costs the same in a fleet of 10 servers or 10,000.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from monitor.history.schema import BUCKET, DAY, day_table

__all__ = [
    "SPARK_POINTS",
    "CheckSpan",
    "Incident",
    "LatencyPoint",
    "PoolEvent",
    "ServerSummary",
    "check_spans",
    "first_seen",
    "incidents",
    "latency",
    "pool_events",
    "pool_first_seen",
    "summaries",
]

# Points of the 24 h sparkline: one per 10-minute bucket.
SPARK_POINTS: Final = DAY // BUCKET
# Points of a latency chart at most (reports are averaged into this many).
CHART_POINTS: Final = 288
# Incidents and pool events listed at most.
LIST_MAX: Final = 200


@dataclass(frozen=True, slots=True)
class Incident:
    """A down period: from the first report down to the first up again (None: still down)."""

    start: float
    end: float | None
    check: str
    reason: str
    detail: str

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start


@dataclass(frozen=True, slots=True)
class ServerSummary:
    """What ``/`` shows of a server's history."""

    uptime_24h: float | None
    uptime_7d: float | None
    uptime_30d: float | None
    # Average headline latency (seconds) per 10 minutes, oldest first; None: no sample.
    spark: tuple[float | None, ...]
    # The open incident, when the server is down now.
    down: Incident | None
    # The last incident that ended.
    last: Incident | None


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    """Average timings of the reports around ``at`` (seconds; None: not measured)."""

    at: float
    connect: float | None
    tls: float | None
    first_byte: float | None
    ping: float | None


@dataclass(frozen=True, slots=True)
class CheckSpan:
    """A check's reason from ``start`` to ``end``."""

    start: float
    end: float
    reason: str


@dataclass(frozen=True, slots=True)
class PoolEvent:
    at: float
    previous: str | None
    chosen: str | None
    reason: str
    detail: str


def _ids(db: sqlite3.Connection, names: Sequence[str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for start in range(0, len(names), 500):
        part = list(names[start : start + 500])
        marks = ",".join("?" * len(part))
        for sid, name in db.execute(f"SELECT id, name FROM servers WHERE name IN ({marks})", part):
            found[sid] = name
    return found


def _ratio(up: int, total: int) -> float | None:
    return up / total if total else None


def _sums(
    db: sqlite3.Connection, sql: str, ids: list[int], since: float
) -> dict[int, tuple[int, int]]:
    marks = ",".join("?" * len(ids))
    rows = db.execute(sql.format(marks=marks), (*ids, since))
    return {sid: (up, total) for sid, up, total in rows}


def summaries(db: sqlite3.Connection, names: Sequence[str], now: float) -> dict[str, ServerSummary]:
    """Uptime, sparkline and incidents of ``names`` (a page of servers).

    24 h: the 10-minute buckets; 7 d and 30 d: the last 7 and 30 UTC days,
    today's included.

    Sums are made by SQLite; Python sees 144 sparkline points and two
    incidents per server.
    """
    out: dict[str, ServerSummary] = {}
    first_bucket = int(now) - int(now) % BUCKET - (SPARK_POINTS - 1) * BUCKET
    today = int(now // DAY)
    found = _ids(db, names)
    every = list(found)
    for start in range(0, len(every), 500):
        ids = every[start : start + 500]
        marks = ",".join("?" * len(ids))
        buckets = (
            "SELECT server, sum(up), sum(total) FROM buckets "
            "WHERE server IN ({marks}) AND at >= ? GROUP BY server"
        )
        daily = (
            "SELECT server, sum(up), sum(total) FROM daily "
            "WHERE server IN ({marks}) AND day > ? GROUP BY server"
        )
        day = _sums(db, buckets, ids, now - DAY - BUCKET)
        week = _sums(db, daily, ids, today - 7)
        month = _sums(db, daily, ids, today - 30)
        sparks: dict[int, list[float | None]] = {sid: [None] * SPARK_POINTS for sid in ids}
        for sid, at, lat_sum, lat_n in db.execute(
            f"SELECT server, at, lat_sum, lat_n FROM buckets WHERE server IN ({marks}) "
            "AND at >= ? AND lat_n > 0",
            (*ids, first_bucket),
        ):
            index = (at - first_bucket) // BUCKET
            if 0 <= index < SPARK_POINTS:
                sparks[sid][index] = lat_sum / lat_n / 1e6
        for sid in ids:
            rows = db.execute(
                "SELECT start, end, name, reason, detail FROM incidents WHERE server = ? "
                "ORDER BY start DESC LIMIT 2",
                (sid,),
            ).fetchall()
            recent = [Incident(*row) for row in rows]
            down = recent[0] if recent and recent[0].end is None else None
            last = next((i for i in recent if i.end is not None), None)
            out[found[sid]] = ServerSummary(
                _ratio(*day.get(sid, (0, 0))),
                _ratio(*week.get(sid, (0, 0))),
                _ratio(*month.get(sid, (0, 0))),
                tuple(sparks[sid]),
                down,
                last,
            )
    return out


def _sid(db: sqlite3.Connection, name: str) -> int | None:
    row = db.execute("SELECT id FROM servers WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def _tables(db: sqlite3.Connection, since: float, now: float) -> list[str]:
    days = {row[0] for row in db.execute("SELECT day FROM days")}
    return [day_table(d) for d in range(int(since // DAY), int(now // DAY) + 1) if d in days]


def latency(db: sqlite3.Connection, name: str, since: float, now: float) -> list[LatencyPoint]:
    """The server's timings from ``since``, averaged into at most ``CHART_POINTS`` points."""
    sid = _sid(db, name)
    if sid is None:
        return []
    step = max(1.0, (now - since) / CHART_POINTS)
    sums: dict[int, list[float]] = {}
    for table in _tables(db, since, now):
        for at, *timings in db.execute(
            f"SELECT at, connect, tls, first_byte, ping FROM {table} WHERE server = ? AND at >= ?",
            (sid, since),
        ):
            cell = sums.setdefault(int((at - since) // step), [0.0] * 8)
            for i, value in enumerate(timings):
                if value is not None:
                    cell[i] += value
                    cell[4 + i] += 1
    return [
        LatencyPoint(
            since + (index + 0.5) * step,
            *(c[i] / c[4 + i] / 1e6 if c[4 + i] else None for i in range(4)),
        )
        for index, c in sorted(sums.items())
    ]


def incidents(db: sqlite3.Connection, name: str, since: float) -> list[Incident]:
    """Down periods that ended after ``since`` (or are still open), newest first."""
    sid = _sid(db, name)
    if sid is None:
        return []
    rows = db.execute(
        "SELECT start, end, name, reason, detail FROM incidents "
        "WHERE server = ? AND (end IS NULL OR end >= ?) ORDER BY start DESC LIMIT ?",
        (sid, since, LIST_MAX),
    )
    return [Incident(*row) for row in rows]


def check_spans(
    db: sqlite3.Connection, name: str, since: float, now: float
) -> dict[str, list[CheckSpan]]:
    """Each check's reasons over ``since``..``now``, as spans, by check."""
    sid = _sid(db, name)
    if sid is None:
        return {}
    out: dict[str, list[CheckSpan]] = {}
    changes: dict[str, list[tuple[float, str]]] = {}
    # The reason each check had at ``since``, then every change after it.
    for check, _at, reason in db.execute(
        "SELECT name, max(at), reason FROM checks WHERE server = ? AND at < ? GROUP BY name",
        (sid, since),
    ):
        changes.setdefault(check, []).append((since, reason))
    for check, at, reason in db.execute(
        "SELECT name, at, reason FROM checks WHERE server = ? AND at >= ? ORDER BY name, at",
        (sid, since),
    ):
        changes.setdefault(check, []).append((at, reason))
    for check, points in changes.items():
        spans = out.setdefault(check, [])
        for (start, reason), (end, _) in zip(points, [*points[1:], (now, "")], strict=True):
            if spans and spans[-1].reason == reason:
                spans[-1] = CheckSpan(spans[-1].start, end, reason)
            else:
                spans.append(CheckSpan(start, end, reason))
    return out


def first_seen(db: sqlite3.Connection, name: str) -> float | None:
    """When history first saw the server (its first report), if ever."""
    sid = _sid(db, name)
    if sid is None:
        return None
    row = db.execute("SELECT min(at) FROM checks WHERE server = ?", (sid,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def pool_first_seen(db: sqlite3.Connection, pool: str) -> float | None:
    """The time of the pool's first recorded change, if any."""
    row = db.execute("SELECT min(at) FROM pool_events WHERE pool = ?", (pool,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def pool_events(db: sqlite3.Connection, pool: str, since: float) -> list[PoolEvent]:
    """The pool's changes of choice after ``since``, newest first."""
    rows = db.execute(
        "SELECT at, previous, chosen, reason, detail FROM pool_events "
        "WHERE pool = ? AND at >= ? ORDER BY at DESC LIMIT ?",
        (pool, since, LIST_MAX),
    )
    return [PoolEvent(*row) for row in rows]
