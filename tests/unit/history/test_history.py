"""The history file: what is written, what the pages read back, restarts,
pruning, row limits, and files that cannot be used."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.checks import LADDER, make_report
from monitor.checks.signalling.xmpp import XmppResult
from monitor.checks.web.probe import WebResult
from monitor.history import History, Limits, open_history, pool_record, report_record
from monitor.history import queries as q
from monitor.history.records import DETAIL_MAX
from monitor.ladder import PoolChange
from monitor.model import Check, CheckResult, Phase, Reason, ServerReport
from monitor.selector import Decision

DAY = 86400
# Noon (UTC) today: opening a history prunes it as of the real time.
NOW = time.time() // DAY * DAY + DAY / 2


def report(
    server: str, at: float, up: bool = True, connect: float = 0.01, detail: str = ""
) -> ServerReport:
    web = Reason.OK if up else Reason.CONNECT_REFUSED
    return make_report(
        LADDER,
        server=server,
        started_at=at - 0.5,
        finished_at=at,
        duration=0.5,
        checks=(
            CheckResult(Check.WEB, web, "" if up else detail or "connection refused"),
            CheckResult(Check.CONFIGJS, Reason.OK if up else Reason.SKIPPED),
            CheckResult(Check.EXTERNAL_API, Reason.OK if up else Reason.SKIPPED),
        ),
        results=(
            WebResult(
                http_phases=(
                    Phase("connect", connect),
                    Phase("tls", 0.02),
                    Phase("processing", 0.03),
                ),
                connect_rtt=connect,
            ),
            XmppResult(ping_rtt=0.005 if up else None),
        ),
    )


async def opened(path: Path, limits: Limits | None = None) -> History:
    import asyncio

    history = await asyncio.to_thread(open_history, path, limits or Limits())
    assert history is not None
    return history


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[History]:
    h = await opened(tmp_path / "h.sqlite")
    yield h
    await h.close()


async def test_uptime_incidents_timelines_latency_and_pool_events(history: History) -> None:
    # a's minute-by-minute hour: down from minute 20 to minute 30, then up again
    for minute in range(60):
        at = NOW - 3600 + minute * 60
        history.add(report_record(report("a", at, up=not 20 <= minute < 30)))
        history.add(report_record(report("b", at, connect=0.02)))
    history.add(
        pool_record(
            Decision("p", "a", "b", PoolChange.INELIGIBLE, "a: web: connect_refused", NOW - 2400)
        )
    )
    await history.flush()

    got = await history.read(lambda db: q.summaries(db, ["a", "b", "nobody"], NOW))
    assert set(got) == {"a", "b"}
    assert got["a"].uptime_24h == pytest.approx(50 / 60)
    assert got["a"].uptime_7d == pytest.approx(50 / 60)
    assert got["a"].uptime_30d == pytest.approx(50 / 60)
    assert got["b"].uptime_24h == 1.0
    assert got["a"].down is None  # up again now
    last = got["a"].last
    assert last is not None
    assert last.check == "web"
    assert last.reason == "connect_refused"
    assert last.start == NOW - 3600 + 20 * 60
    assert last.end == NOW - 3600 + 30 * 60
    assert last.detail == "connection refused"
    # the sparkline: ping (5 ms) where measured, the connect time where not
    points = [p for p in got["a"].spark if p is not None]
    assert 6 <= len(points) <= 7
    assert all(0.004 < p < 0.011 for p in points)

    spans = await history.read(lambda db: q.check_spans(db, "a", NOW - 7200, NOW))
    assert [(s.reason, s.start, s.end) for s in spans["web"]] == [
        ("ok", NOW - 3600, NOW - 3600 + 1200),
        ("connect_refused", NOW - 3600 + 1200, NOW - 3600 + 1800),
        ("ok", NOW - 3600 + 1800, NOW),
    ]
    assert [s.reason for s in spans["configjs"]] == ["ok", "skipped", "ok"]

    chart = await history.read(lambda db: q.latency(db, "b", NOW - 3600, NOW))
    assert 50 <= len(chart) <= 60
    assert all(p.connect == pytest.approx(0.02) and p.tls == pytest.approx(0.02) for p in chart)
    assert all(
        p.first_byte == pytest.approx(0.03) and p.ping == pytest.approx(0.005) for p in chart
    )

    events = await history.read(lambda db: q.pool_events(db, "p", NOW - DAY))
    assert [(e.previous, e.chosen, e.reason) for e in events] == [("a", "b", "ineligible")]
    assert await history.read(lambda db: q.pool_events(db, "other", NOW - DAY)) == []


async def test_an_open_incident_survives_a_restart_and_closes_after_it(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    first = await opened(path)
    first.add(report_record(report("a", NOW - 600)))
    first.add(report_record(report("a", NOW - 300, up=False)))
    await first.close()

    second = await opened(path)
    got = await second.read(lambda db: q.summaries(db, ["a"], NOW))
    down = got["a"].down
    assert down is not None
    assert down.start == NOW - 300
    assert down.end is None
    assert down.duration(NOW) == 300
    second.add(report_record(report("a", NOW - 240, up=False)))  # still the same incident
    second.add(report_record(report("a", NOW - 60)))
    await second.flush()
    found = await second.read(lambda db: q.incidents(db, "a", NOW - DAY))
    assert [(i.start, i.end) for i in found] == [(NOW - 300, NOW - 60)]
    await second.close()


async def test_retention_and_the_row_limit_drop_whole_old_days(tmp_path: Path) -> None:
    history = await opened(tmp_path / "h.sqlite", Limits(retention=3 * DAY, max_rows=10_000))
    for days_ago in (10, 5, 2, 1, 0):
        for i in range(4000 if days_ago == 2 else 100):
            history.add(report_record(report("a", NOW - days_ago * DAY - i)))
    history.add(pool_record(Decision("p", None, "a", PoolChange.INITIAL, "x", NOW - 200 * DAY)))
    await history.flush(prune_at=NOW)

    def tables(db: sqlite3.Connection) -> list[tuple[int, int]]:
        return db.execute("SELECT day, rows FROM days ORDER BY day").fetchall()

    kept = await history.read(tables)
    # 10 and 5 days ago: older than the retention; every day from 3 days ago kept
    assert [NOW // DAY - day for day, _ in kept] == [2, 1, 0]
    assert sum(rows for _, rows in kept) == 4200
    oldest = await history.read(lambda db: db.execute("SELECT min(at) FROM buckets").fetchone()[0])
    assert oldest >= NOW - 3 * DAY  # the 10-minute buckets go with the retention too
    days = await history.read(lambda db: db.execute("SELECT count(*) FROM daily").fetchone()[0])
    assert days == 5  # the daily roll-ups stay for keep_events (90 d)
    assert await history.read(lambda db: q.pool_events(db, "p", 0)) == []

    # the row limit: 4200 rows > 1000 allowed; the oldest days go, today stays
    await history.close()
    history = await opened(tmp_path / "h.sqlite", Limits(retention=3 * DAY, max_rows=10_000))
    # The writer prunes first thing in its thread; a flush is answered after
    # that, so the test's own use of the writer's connection cannot race it.
    await history.flush()
    history._writer.limits = Limits(retention=3 * DAY, max_rows=150)
    await history.flush(prune_at=NOW)
    kept = await history.read(tables)
    assert [NOW // DAY - day for day, _ in kept] == [0]
    names = await history.read(
        lambda db: [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'reports_%'")
        ]
    )
    assert len(names) == 1
    await history.close()


async def test_server_texts_are_cut_before_they_are_stored(history: History) -> None:
    history.add(report_record(report("a", NOW - 10, up=False, detail="x" * 100_000)))
    await history.flush()
    found = await history.read(lambda db: q.incidents(db, "a", 0))
    assert len(found[0].detail) == DETAIL_MAX + 1  # and the mark of the cut
    assert found[0].detail.endswith("…")


async def test_a_damaged_file_is_moved_aside_and_history_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not a database" * 1000)
    with caplog.at_level(logging.WARNING):
        history = await opened(path)
    aside = list(tmp_path.glob("h.sqlite.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not")
    assert "history file" in caplog.text
    assert "cannot be used" in caplog.text
    assert "moved aside" in caplog.text
    history.add(report_record(report("a", NOW)))
    await history.flush()
    assert (await history.read(lambda db: q.summaries(db, ["a"], NOW)))["a"].uptime_24h == 1.0
    await history.close()


async def test_a_file_in_use_by_another_monitor_turns_history_off(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    with caplog.at_level(logging.ERROR, "monitor.history"):
        second = await asyncio.to_thread(open_history, history.path, Limits())
    assert second is None
    assert "history is off" in caplog.text
    assert "in use by another monitor" in caplog.text
    history.add(report_record(report("a", NOW)))  # the first goes on
    await history.flush()
    assert (await history.read(lambda db: q.summaries(db, ["a"], NOW)))["a"].uptime_24h == 1.0


async def test_a_path_that_cannot_be_a_file_turns_history_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    (tmp_path / "dir.sqlite").mkdir()
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "elsewhere")
    with caplog.at_level(logging.ERROR, "monitor.history"):
        for name in ("dir.sqlite", "link.sqlite"):
            assert await asyncio.to_thread(open_history, tmp_path / name, Limits()) is None
    assert caplog.text.count("history is off") == 2
    assert not (tmp_path / "elsewhere").exists()


async def test_a_failing_write_is_logged_and_history_turns_itself_off(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    # the writer's connection refuses writes: each batch fails, the loop goes on
    # The writer prunes first thing in its thread; a flush is answered after
    # that, so the test's own use of the writer's connection cannot race it.
    await history.flush()
    history._writer.db.execute("PRAGMA query_only = ON")
    with caplog.at_level(logging.ERROR, "monitor.history"):
        for i in range(6):
            history.add(report_record(report("a", NOW + i)))
            await history.flush()
    assert "cannot write" in caplog.text
    assert "history is off" in caplog.text
    assert not history.on
    assert history.dropped >= 5
    history.add(report_record(report("a", NOW + 10)))  # ignored, no error


async def test_pruning_keeps_a_stable_timeline_and_forgets_servers_long_gone(
    tmp_path: Path,
) -> None:
    history = await opened(tmp_path / "h.sqlite")
    # "stable" is ok for 99 days (one change row per check, 99 days old);
    # "gone" left the fleet 99 days ago
    for name in ("stable", "gone"):
        history.add(report_record(report(name, NOW - 99 * DAY)))
    history.add(report_record(report("stable", NOW - 60)))
    await history.flush(prune_at=NOW)

    week = NOW - 7 * DAY
    spans = await history.read(lambda db: q.check_spans(db, "stable", week, NOW))
    assert spans["web"] == [q.CheckSpan(week, NOW, "ok")]
    assert set(spans) == {"web", "configjs", "external_api"}
    names = await history.read(lambda db: [n for (n,) in db.execute("SELECT name FROM servers")])
    assert names == ["stable"]
    writer = history._writer
    assert set(writer.ids) == {"stable"}
    assert {sid for sid, _ in writer.last} == {writer.ids["stable"]}
    assert history.servers_pruned == 1
    # a server that comes back starts afresh, its changes written again
    history.add(report_record(report("gone", NOW, up=False)))
    await history.flush()
    back = await history.read(lambda db: q.check_spans(db, "gone", week, NOW + 60))
    assert back["web"] == [q.CheckSpan(NOW, NOW + 60, "connect_refused")]
    await history.close()


async def test_pruning_runs_at_start_without_waiting_for_a_record(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "h.sqlite"
    history = await opened(path)
    history.add(report_record(report("a", NOW - 30 * DAY)))
    history.add(report_record(report("a", NOW)))
    await history.flush()

    def days(db: sqlite3.Connection) -> list[int]:
        return [day for (day,) in db.execute("SELECT day FROM days ORDER BY day")]

    today = int(NOW // DAY)
    assert await history.read(days) == [today - 30, today]
    await history.close()

    history = await opened(path)  # no record, no flush: the writer prunes on its own
    deadline = time.monotonic() + 10
    while await history.read(days) != [today]:
        assert time.monotonic() < deadline, "the history was not pruned at start"
        await asyncio.sleep(0.05)
    await history.close()


async def test_an_unexpected_error_in_the_writer_is_logged_and_the_writer_goes_on(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    # a day number no calendar holds (a file edited by hand, or damaged):
    # pruning it raises OverflowError, not an sqlite3.Error
    # The writer prunes first thing in its thread; a flush is answered after
    # that, so the test's own use of the writer's connection cannot race it.
    await history.flush()
    history._writer.db.execute("INSERT INTO days(day, rows) VALUES (?, 0)", (-(10**15),))
    with caplog.at_level(logging.ERROR, "monitor.history"):
        await history.flush(prune_at=NOW)
    assert "history: cannot prune" in caplog.text
    assert history.on
    assert history.errors == 1
    history.add(report_record(report("a", NOW)))
    await history.flush()
    assert (await history.read(lambda db: q.summaries(db, ["a"], NOW)))["a"].uptime_24h == 1.0
