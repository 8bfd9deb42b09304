"""The HA database: two connections, every statement bounded, every error classified.

- The lock connection holds the leader's session advisory lock and this
  instance's name lock, and carries the heartbeat. It is set up so that the
  server frees its locks within the lease when this process stops talking
  (``idle_session_timeout``, keepalives, ``tcp_user_timeout``; see ``settings``).
- The data connection reads and writes the one row of shared state. A write
  names the writer's epoch and is refused in the same statement when the epoch
  has moved on (``UPDATE ... WHERE epoch = %s``): a leader that wakes from a
  pause cannot overwrite its successor's state.

A transaction pooler (PgBouncer in transaction mode) hands each transaction
to whichever server session is free, which breaks session locks: it is
detected and refused. Left alone, such a pooler hands a lone client the same
server session again and again (PgBouncer reuses the last one), so watching
one connection's backend pid proves little. ``open`` makes the pooler show
itself, before taking any lock: the lock connection sets a mark in its session,
then the data connection opens a transaction and reads it. Without a pooler
its own session never has it; through a transaction pooler it is handed the
lock connection's idle server session (and sees the mark), or, when that
session is busy, the lock connection asks next, while that transaction keeps
its own session, and finds the mark gone. Every failure is a ``HaError``
whose detail never holds the password.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from monitor import escape
from monitor.ha.settings import HaSettings
from monitor.ha.verdicts import MAX_VERDICT_BYTES

__all__ = ["LOCK_SPACE", "SHARD_SPACE", "HaError", "Look", "Store", "session_problem"]

log = logging.getLogger("monitor.ha")

# The advisory locks' first key (pg_locks.classid): "jm" for the leader's lock
# (second key 1), "jn" for the instance names (second key hashtext(name)).
LOCK_SPACE: Final = 0x6A6D
NAME_SPACE: Final = 0x6A6E
# Scale-out's shards: "js", second key the shard's number.
SHARD_SPACE: Final = 0x6A73
_LEADER: Final = 1
# A setting of the lock connection's own session: the transaction pooler's check.
_MARK: Final = "jitsi_monitor.session_mark"
_ROUNDS: Final = 3
# The shared state is the state file's content: bounded as that file is.
MAX_STATE_BYTES: Final = 16 * 1024 * 1024

Reason = Literal[
    "no_driver", "unreachable", "auth", "permission", "pooler", "duplicate", "timeout", "error"
]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS jitsi_monitor_ha (
    id integer PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL DEFAULT 0,
    leader text NOT NULL DEFAULT '',
    seq bigint NOT NULL DEFAULT 0,
    state_epoch bigint NOT NULL DEFAULT 0,
    state jsonb
)"""
# Scale-out: each server's latest verdict, written by whoever probes it. ``at``
# comes from the column's own sequence at every write, so the leader reads what
# changed since its last look.
_VERDICTS: Final = """
CREATE TABLE IF NOT EXISTS jitsi_monitor_ha_verdicts (
    server text PRIMARY KEY,
    verdict text NOT NULL,
    score double precision,
    probed_by text NOT NULL,
    at bigserial NOT NULL
)"""
# A batch of verdicts, written only for the shards this session holds (checked in
# pg_locks in the same statement): an instance that lost a shard while paused or
# cut off cannot overwrite the new owner's verdicts.
_WRITE_VERDICTS: Final = f"""
INSERT INTO jitsi_monitor_ha_verdicts (server, verdict, score, probed_by)
SELECT u.server, u.verdict, u.score, %s
FROM unnest(%s::text[], %s::int[], %s::text[], %s::float8[]) AS u(server, shard, verdict, score)
WHERE u.shard IN (
    SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' AND granted
        AND classid = {SHARD_SPACE} AND objsubid = 2 AND pid = pg_backend_pid())
ON CONFLICT (server) DO UPDATE SET verdict = excluded.verdict, score = excluded.score,
    probed_by = excluded.probed_by, at = excluded.at"""

_HERE: Final = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
_LOOK: Final = f"""
SELECT
    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND {_HERE}
        AND classid = {LOCK_SPACE} AND objid = {_LEADER} AND objsubid = 2
        AND pid = pg_backend_pid()),
    epoch, leader, seq,
    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND {_HERE}
        AND classid = {NAME_SPACE} AND objsubid = 2)
FROM jitsi_monitor_ha WHERE id = 1"""


class HaError(Exception):
    """The HA database cannot be used: a reason and a detail without the password."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Look:
    """One heartbeat's view: whether this session holds the leader's lock, the
    current epoch and leader, the state's version and how many instances are up."""

    holding: bool
    epoch: int
    leader: str
    seq: int
    instances: int


def session_problem(pids: list[int], lock_seen: bool, *, shared: bool = False) -> str | None:
    """Why these answers mean a transaction pooler is in the way, or None: ``pids``
    the lock connection's backend over consecutive statements, ``lock_seen`` whether
    its session kept what it set (a setting, a lock), ``shared`` whether the data
    connection ran in the lock connection's server session."""
    if shared:
        return (
            "the instance's two connections ran in one server session (the data "
            "connection saw a setting of the lock connection's session): a pooler in "
            "transaction mode is in the way, and it breaks session advisory locks; connect to "
            "PostgreSQL directly or through a session-mode pool"
        )
    if len(set(pids)) > 1:
        return (
            "consecutive statements ran in different server sessions (backend pids "
            f"{', '.join(map(str, pids))}): a pooler in transaction mode is in the way, and "
            "it breaks session advisory locks; connect to PostgreSQL directly or through a "
            "session-mode pool"
        )
    if not lock_seen:
        return (
            "this connection's session did not keep its own state between statements (a "
            "setting, or the advisory lock just taken, gone from pg_locks): a pooler in "
            "transaction mode is in the way; connect directly or through a session-mode pool"
        )
    return None


class Store:
    """The two connections of one instance; ``open`` first, ``close`` at the end."""

    def __init__(self, settings: HaSettings) -> None:
        self.settings = settings
        self._lock: Any = None
        self._data: Any = None

    # -- connecting -------------------------------------------------------------

    async def open(self) -> None:
        """Connect both, check the session is real, create the table, claim the name."""
        self._lock = await self._connect(lock=True)
        self._data = await self._connect(lock=False)
        pids = [int((await self._one(self._lock, "SELECT pg_backend_pid()"))[0]) for _ in range(3)]
        problem = session_problem(pids, lock_seen=True)
        if problem:
            raise HaError("pooler", problem)
        await self._check_sessions(pids)
        await self._schema()
        name = self.settings.instance
        got = await self._one(
            self._lock, f"SELECT pg_try_advisory_lock({NAME_SPACE}, hashtext(%s))", (name,)
        )
        if not got[0]:
            raise HaError(
                "duplicate",
                f"another instance named {name!r} is connected to this database; "
                "give each instance its own ha.instance",
            )
        seen = await self._one(
            self._lock,
            f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND {_HERE} "
            f"AND classid = {NAME_SPACE} AND objid = hashtext(%s)::oid AND objsubid = 2 "
            "AND pid = pg_backend_pid()",
            (name,),
        )
        problem = session_problem(pids, lock_seen=int(seen[0]) == 1)
        if problem:
            raise HaError("pooler", problem)

    async def _check_sessions(self, pids: list[int]) -> None:
        """Refuse a transaction pooler (see the module's docstring), before any lock is
        taken (through such a pooler a lock would stay behind in the pool's session): a
        mark set in the lock connection's session must not be seen by the data
        connection inside a transaction, and must still be seen by the lock connection
        while that transaction keeps its own server session."""
        import psycopg

        mark = secrets.token_hex(8)
        read = f"SELECT current_setting('{_MARK}', true) IS NOT DISTINCT FROM %s"
        try:
            await self._one(self._lock, f"SELECT set_config('{_MARK}', %s, false)", (mark,))
            # Alone, the first round finds a transaction pooler; with other clients busy
            # on it, one round can miss it (the data connection given a third session,
            # the lock connection its own again), each further round as rarely again.
            for _ in range(_ROUNDS):
                async with self._data.transaction():
                    (shared,) = await self._one(self._data, read, (mark,))
                    if shared:
                        # Raised before the lock connection's next statement: with a pool
                        # of one server session, it would wait for this transaction.
                        raise HaError("pooler", session_problem(pids, True, shared=True) or "")
                    (kept,) = await self._one(self._lock, read, (mark,))
                problem = session_problem(pids, lock_seen=bool(kept))
                if problem:
                    raise HaError("pooler", problem)
        except psycopg.Error as exc:
            raise HaError("error", self._scrub(exc)) from None

    async def _connect(self, *, lock: bool) -> Any:
        try:
            import psycopg
        except ImportError:
            raise HaError(
                "no_driver", "psycopg is not installed: pip install 'jitsi-monitor[ha]'"
            ) from None
        s, dsn = self.settings, self.settings.dsn
        params: dict[str, Any] = dict(dsn.params)
        if dsn.host:
            params.setdefault("host", dsn.host)
        # The lock's session ends after a lease of silence: that frees a paused
        # leader's lock, which keepalives alone would not (its kernel answers them).
        options = f"-c statement_timeout={int(s.deadline * 1000)}"
        if lock:
            options += f" -c idle_session_timeout={s.idle_session_ms}"
        keepalive = max(1, round(s.lease / 5))
        params.update(
            port=dsn.port,
            user=dsn.user,
            dbname=dsn.database,
            connect_timeout=s.connect_timeout,
            application_name=f"jitsi-monitor {s.instance}"[:63],
            options=options,
            keepalives=1,
            keepalives_idle=keepalive,
            keepalives_interval=keepalive,
            keepalives_count=2,
            tcp_user_timeout=s.tcp_user_ms,
        )
        if s.password is not None:
            params["password"] = s.password.value
        try:
            return await psycopg.AsyncConnection.connect(autocommit=True, **params)
        except psycopg.OperationalError as exc:
            raise self._connect_error(exc) from None
        except psycopg.Error as exc:
            raise HaError("error", self._scrub(exc)) from None

    def _connect_error(self, exc: Exception) -> HaError:
        text = str(exc)
        lower, detail = text.lower(), self._scrub(text)
        shown = self.settings.dsn.shown
        if "password" in lower or "authentication" in lower or "pg_hba.conf" in lower:
            return HaError("auth", f"{shown} refused the login: {detail}")
        if "timeout" in lower or "timed out" in lower:
            return HaError("timeout", f"connecting to {shown} took too long: {detail}")
        return HaError("unreachable", f"cannot connect to {shown}: {detail}")

    def _scrub(self, exc: object) -> str:
        text = str(exc)
        password = self.settings.password
        if password is not None and password.value:
            text = text.replace(password.value, "<password>")
        return escape.plain(text, 300)

    async def _schema(self) -> None:
        import psycopg
        from psycopg import errors

        try:
            async with self._data.transaction():
                # One instance at a time: CREATE TABLE IF NOT EXISTS races itself.
                await self._data.execute(f"SELECT pg_advisory_xact_lock({LOCK_SPACE}, 0)")
                await self._data.execute(_SCHEMA)
                await self._data.execute(
                    "INSERT INTO jitsi_monitor_ha (id) VALUES (1) ON CONFLICT (id) DO NOTHING"
                )
                if self.settings.shards > 1:
                    await self._data.execute(_VERDICTS)
        except errors.InsufficientPrivilege as exc:
            raise HaError(
                "permission",
                f"{self.settings.dsn.user} may not create or write the table jitsi_monitor_ha "
                f"({self._scrub(exc)}); create it as docs/ha.md shows and GRANT SELECT, "
                "INSERT, UPDATE on it",
            ) from None
        except psycopg.Error as exc:
            raise HaError("error", self._scrub(exc)) from None

    async def close(self) -> None:
        """Close both connections: the server frees this instance's locks at once."""
        for conn in (self._lock, self._data):
            if conn is not None:
                try:
                    await conn.close()
                except Exception as exc:  # a broken connection: nothing left to free
                    log.debug("closing an HA connection: %s", self._scrub(exc))
        self._lock = self._data = None

    # -- the heartbeat and the election ---------------------------------------------

    async def look(self) -> Look:
        """Whether this session holds the leader's lock; the epoch, leader and state's seq."""
        row = await self._one(self._lock, _LOOK)
        return Look(int(row[0]) == 1, int(row[1]), str(row[2])[:64], int(row[3]), int(row[4]))

    async def try_lead(self) -> tuple[int, dict[str, Any] | None] | None:
        """Take the leader's lock if free: then bump the epoch; the new epoch and the
        shared state the last leader wrote (None if none). None: someone else leads."""
        got = await self._one(self._lock, f"SELECT pg_try_advisory_lock({LOCK_SPACE}, {_LEADER})")
        if not got[0]:
            return None
        look = await self.look()
        if not look.holding:
            raise HaError("pooler", session_problem([], lock_seen=False) or "")
        row = await self._one(
            self._lock,
            "UPDATE jitsi_monitor_ha SET epoch = epoch + 1, leader = %s WHERE id = 1 "
            "RETURNING epoch",
            (self.settings.instance,),
        )
        _, _, state = await self.read_state()
        return int(row[0]), state

    # -- the shared state -------------------------------------------------------------

    async def read_state(self) -> tuple[int, int, dict[str, Any] | None]:
        """The state's seq, the epoch that wrote it, and the state (None: absent or too large)."""
        row = await self._one(
            self._data,
            "SELECT seq, state_epoch, CASE WHEN pg_column_size(state) <= %s THEN state::text END "
            "FROM jitsi_monitor_ha WHERE id = 1",
            (MAX_STATE_BYTES,),
        )
        state: dict[str, Any] | None = None
        if row[2] is not None:
            try:
                loaded = json.loads(row[2])
            except (ValueError, RecursionError):
                loaded = None
            state = loaded if isinstance(loaded, dict) else None
        return int(row[0]), int(row[1]), state

    async def write_state(self, epoch: int, data: str) -> bool:
        """Write the state as ``epoch``'s leader; False (nothing written) once it moved on."""
        async with self._data.cursor() as cur:
            await cur.execute(
                "UPDATE jitsi_monitor_ha SET state = %s::jsonb, state_epoch = epoch, "
                "seq = seq + 1 WHERE id = 1 AND epoch = %s",
                (data, epoch),
            )
            return bool(cur.rowcount == 1)

    # -- scale-out: shards and verdicts --------------------------------------------------

    async def claim(self, shards: list[int], limit: int) -> list[int]:
        """Take up to ``limit`` of ``shards`` that are free, in their order; those taken.
        One statement a shard: a set-returning query could lock more than it returns."""
        taken: list[int] = []
        for shard in shards:
            if len(taken) >= limit:
                break
            got = await self._one(
                self._lock, f"SELECT pg_try_advisory_lock({SHARD_SPACE}, %s)", (shard,)
            )
            if got[0]:
                taken.append(shard)
        return taken

    async def release(self, shards: list[int]) -> None:
        """Let go of ``shards`` (another instance may take them at its next heartbeat)."""
        if shards:
            await self._one(
                self._lock,
                f"SELECT count(pg_advisory_unlock({SHARD_SPACE}, s)) FROM unnest(%s::int[]) s",
                (shards,),
            )

    async def write_verdicts(self, rows: list[tuple[str, int, str, float | None]]) -> int:
        """Store a batch of (server, shard, verdict, score) in one statement; how many
        were stored (a row of a shard this session does not hold is not)."""
        if not rows:
            return 0
        servers, shards, verdicts, scores = (list(column) for column in zip(*rows, strict=True))
        async with self._lock.cursor() as cur:
            await cur.execute(
                _WRITE_VERDICTS, (self.settings.instance, servers, shards, verdicts, scores)
            )
            return int(cur.rowcount)

    async def read_verdicts(self, after: int) -> list[tuple[str, str, Any, int]]:
        """The verdicts written since ``after``: (server, verdict, score, at), oldest first."""
        async with self._data.cursor() as cur:
            await cur.execute(
                "SELECT server, CASE WHEN length(verdict) <= %s THEN verdict ELSE '' END, "
                "score, at FROM jitsi_monitor_ha_verdicts WHERE at > %s ORDER BY at",
                (MAX_VERDICT_BYTES, after),
            )
            rows = await cur.fetchall()
        return [(str(r[0]), str(r[1]), r[2], int(r[3])) for r in rows]

    async def _one(self, conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if conn is None:
            raise HaError("unreachable", "not connected")
        async with conn.cursor() as cur:
            await cur.execute(sql, params or None)
            row = await cur.fetchone()
        if row is None:
            raise HaError("error", "the table jitsi_monitor_ha has no row 1")
        return row
