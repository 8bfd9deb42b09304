"""A real PgBouncer in front of the tests' PostgreSQL, in a temporary directory.

Debian's ``pgbouncer`` (``scripts/check`` installs it and stops its system
service) is started on a free port of 127.0.0.1 with its own ``pgbouncer.ini``
and ``userlist.txt``: the monitor's login (``MONITOR_USER`` with its password,
SCRAM on both sides) to the PostgreSQL ``databases.postgresql`` started.

``pool_mode`` is the point: ``transaction`` hands each transaction to whichever
server session is free, ``session`` gives a client one server session for its
whole connection. ``default_pool_size`` is above 1 so that a transaction pooler
really has several server sessions to hand out.

``ignore_startup_parameters = options``: PgBouncer 1.18 refuses a client that
sends ``options`` (the monitor sets ``statement_timeout`` and
``idle_session_timeout`` there) unless told to ignore it, which is what an
administrator putting a pooler in front of the monitor would write.

PgBouncer refuses to run as root: as root, its directory is given to
``nobody`` and it runs through ``runuser -u nobody --``, as PostgreSQL does in
``databases``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.support.databases import (
    DB_NAME,
    MONITOR_PASSWORD,
    MONITOR_USER,
    START_TIMEOUT,
    Database,
    free_port,
)

__all__ = ["PgBouncer", "pgbouncer"]

PoolMode = Literal["session", "transaction"]


@dataclass(frozen=True)
class PgBouncer:
    """A running PgBouncer: where it listens and what it pools."""

    port: int
    pool_mode: PoolMode
    pool_size: int

    @property
    def dsn(self) -> str:
        """The monitor's DSN through the pooler (the password from file or environment)."""
        return f"postgresql://{MONITOR_USER}@127.0.0.1:{self.port}/{DB_NAME}"


def _binary() -> str:
    found = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(found).exists():
        raise RuntimeError("pgbouncer not found: install Debian's pgbouncer (scripts/check does)")
    return found


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def pgbouncer(db: Database, pool_mode: PoolMode, pool_size: int = 4) -> Iterator[PgBouncer]:
    """PgBouncer in ``pool_mode`` in front of ``db`` (a PostgreSQL from ``databases``)."""
    assert db.kind == "postgresql"
    base = Path(tempfile.mkdtemp(prefix="jm-pgb-"))
    port = free_port()
    log = base / "pgbouncer.log"
    (base / "userlist.txt").write_text(f'"{MONITOR_USER}" "{MONITOR_PASSWORD}"\n')
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{DB_NAME} = host={db.host} port={db.port} dbname={DB_NAME}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        f"logfile = {log}\n"
        f"pidfile = {base / 'pgbouncer.pid'}\n"
        "auth_type = scram-sha-256\n"
        f"auth_file = {base / 'userlist.txt'}\n"
        f"pool_mode = {pool_mode}\n"
        f"default_pool_size = {pool_size}\n"
        "min_pool_size = 0\n"
        "max_client_conn = 50\n"
        "ignore_startup_parameters = options\n"
    )
    argv = [_binary(), str(base / "pgbouncer.ini")]
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
        for path in (base, *base.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        argv = ["runuser", "-u", "nobody", "--", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(port):
            if process.poll() is not None:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"pgbouncer exited ({process.returncode}): {text[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("pgbouncer did not listen in time")
            time.sleep(0.1)
        yield PgBouncer(port, pool_mode, pool_size)
    finally:
        if process.poll() is None:
            # SIGINT is PgBouncer's safe shutdown: it waits for clients. SIGTERM stops at once.
            with contextlib.suppress(ProcessLookupError):
                pidfile = base / "pgbouncer.pid"
                if pidfile.exists():
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
                process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(base, ignore_errors=True)
