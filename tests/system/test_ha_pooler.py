"""HA through a real PgBouncer: transaction mode is refused at start, session mode works.

The same PgBouncer configuration (``tests/support/pgbouncer.py``) serves both
cases, only ``pool_mode`` differs: what is refused is transaction pooling, not
PgBouncer. The pool has several server sessions, and the test keeps them in use
while ``serve`` starts (two clients of its own, both in a transaction at once,
one of them still in it), so the instance finds the pooler with other clients
around, not only when it is alone on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from monitor.ha.store import LOCK_SPACE
from monitor.lab import LabServer
from tests.support.databases import DB_NAME, MONITOR_PASSWORD, MONITOR_USER, Database, postgresql
from tests.support.pgbouncer import PgBouncer, pgbouncer
from tests.support.pools import pool_config

LEASE = 3.0


@pytest.fixture
def pg() -> Iterator[Database]:
    with postgresql() as db:
        db.execute(f"GRANT CREATE ON SCHEMA public TO {MONITOR_USER}")
        yield db


def server_sessions(db: Database) -> int:
    """The monitor user's sessions at PostgreSQL (through the pooler: its server sessions)."""
    rows = db.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [MONITOR_USER])
    return int(rows[0][0])


@contextlib.contextmanager
def busy(db: Database, pb: PgBouncer) -> Iterator[None]:
    """Two clients of the test through the pooler, each in a transaction at once: the
    pool opens two server sessions. One then ends its transaction (an idle server
    session to hand out), the other stays in its own while the block runs."""

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=pb.port, user=MONITOR_USER, password=MONITOR_PASSWORD,
            dbname=DB_NAME, connect_timeout=10, prepare_threshold=None,
        )  # fmt: skip

    with connect() as idle, connect() as held:
        idle.execute("SELECT pg_backend_pid()")  # a transaction begins (not autocommit)
        held.execute("SELECT pg_backend_pid()")
        assert server_sessions(db) >= 2
        idle.commit()
        try:
            yield
        finally:
            held.rollback()


def ha_config(tmp_path: Path, labs: list[LabServer], name: str, dsn: str) -> Path:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    text = pool_config(home, labs).read_text()
    text += f"ha:\n  database: {dsn}\n  lease: {LEASE:g}s\n  instance: {name}\n"
    path = home / "servers.yaml"
    path.write_text(text)
    return path


def serve_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "monitor", "serve", "--port", "0", str(config)]


ENV = {**os.environ, "JITSI_MONITOR_HA_PASSWORD": MONITOR_PASSWORD}


async def test_an_ha_database_behind_a_transaction_pooler_is_refused_at_start(
    tmp_path: Path, pg: Database, labs: list[LabServer]
) -> None:
    with pgbouncer(pg, "transaction", pool_size=4) as pb, busy(pg, pb):
        config = ha_config(tmp_path, labs, "mon-a", pb.dsn)
        proc = await asyncio.create_subprocess_exec(
            *serve_argv(config), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=ENV,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    assert proc.returncode != 0, text
    assert f"ha.database {pb.dsn}" in text
    assert "a pooler in transaction mode is in the way" in text
    assert "session-mode pool" in text
    assert "Traceback" not in text
    assert MONITOR_PASSWORD not in text
    assert not re.search(r"ha: \S+ leads", text)
    # Refused before any lock or table: nothing claimed, nothing left in the pool's sessions.
    held = pg.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
        [LOCK_SPACE],
    )
    assert held == [(0,)]
    assert pg.execute("SELECT to_regclass('jitsi_monitor_ha')") == [(None,)]


async def healthz(base: str) -> dict[str, Any] | None:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{base}/healthz") as resp:
            data: dict[str, Any] = await resp.json()
            return data["ha"]  # type: ignore[no-any-return]
    except (aiohttp.ClientError, OSError):
        return None


async def test_the_same_pgbouncer_in_session_mode_gives_one_leader(
    tmp_path: Path, pg: Database, labs: list[LabServer]
) -> None:
    # Two instances of two connections each, and the test's two: a server session each.
    with pgbouncer(pg, "session", pool_size=8) as pb, busy(pg, pb):
        procs: list[asyncio.subprocess.Process] = []
        logs: list[Path] = []
        try:
            for name in ("mon-a", "mon-b"):
                argv = serve_argv(ha_config(tmp_path, labs, name, pb.dsn))
                log = tmp_path / f"{name}.log"
                with log.open("wb") as out:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, stdout=out, stderr=out, env=ENV
                    )
                procs.append(proc)
                logs.append(log)
            loop = asyncio.get_running_loop()
            end = loop.time() + 60
            roles: list[str | None] = []
            while loop.time() < end:
                for proc, log in zip(procs, logs, strict=True):
                    assert proc.returncode is None, log.read_text()
                bases = [
                    re.search(r"metrics on (http://[\d.]+:\d+)/metrics", p.read_text())
                    for p in logs
                ]
                if all(bases):
                    answers = [await healthz(b.group(1)) for b in bases if b]
                    roles = [a["role"] if a else None for a in answers]
                    if sorted(map(str, roles)) == ["follower", "leader"]:
                        break
                await asyncio.sleep(0.2)
            assert sorted(map(str, roles)) == ["follower", "leader"], [
                log.read_text()[-2000:] for log in logs
            ]
            text = "".join(log.read_text() for log in logs)
            assert "pooler" not in text
            assert MONITOR_PASSWORD not in text
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
