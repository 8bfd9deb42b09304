"""Real PostgreSQL and MariaDB for the Moodle tests, each in a temporary directory.

Debian's packages (``postgresql``, ``mariadb-server``; ``scripts/check`` installs
them) are started on 127.0.0.1 with a free port and a unix socket in the
temporary directory, never the system's instance. Each holds a Moodle database
with ``{prefix}jitsi_servers`` and ``{prefix}config_plugins`` in the shape of
mod_jitsi's ``db/install.xml`` and Moodle's ``lib/db/install.xml``
(SergioComeron/moodle-mod_jitsi at 3e040231d89c8b732d33a5d7140d0099eba29d49,
build 2026071001), and a login ``jitsi_monitor`` that has only ``SELECT`` on the
two tables (the GRANTs the docs give), plus the superuser the test writes with.

PostgreSQL refuses to run as root: as root, its directory is given to
``nobody`` and ``initdb``/``postgres`` run through ``runuser -u nobody --``.
``mariadbd`` runs with ``--user=root`` when we are root.

``silent_listener`` is a TCP listener on loopback that accepts and never
answers: a database that stalls.
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
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

__all__ = [
    "DB_NAME",
    "MONITOR_PASSWORD",
    "MONITOR_USER",
    "Database",
    "free_port",
    "mariadb",
    "postgresql",
    "silent_listener",
]

MONITOR_USER = "jitsi_monitor"
MONITOR_PASSWORD = "db-pass-Zq8"  # a test value; the tests check it never reaches output
DB_NAME = "moodle"
START_TIMEOUT = 60.0

# mod_jitsi's jitsi_servers (db/install.xml l.86-122 at the commit above), as
# Moodle's XMLDB generates it: char(N) -> varchar(N), text, int(10) -> bigint.
_SERVERS_COLUMNS = """
    name VARCHAR(255) DEFAULT '',
    type SMALLINT NOT NULL DEFAULT 0,
    domain VARCHAR(255) DEFAULT '',
    appid VARCHAR(255) DEFAULT '',
    secret VARCHAR(255) DEFAULT '',
    eightbyeightappid VARCHAR(255) DEFAULT '',
    eightbyeightapikeyid VARCHAR(255) DEFAULT '',
    privatekey TEXT,
    gcpproject VARCHAR(255),
    gcpzone VARCHAR(100),
    gcpinstancename VARCHAR(255),
    gcpstaticipname VARCHAR(255),
    gcpstaticipaddress VARCHAR(45) DEFAULT '',
    provisioningstatus VARCHAR(50) DEFAULT '',
    provisioningtoken VARCHAR(64) DEFAULT '',
    provisioningerror TEXT,
    jibri_enabled SMALLINT NOT NULL DEFAULT 0,
    jibri_gcpinstancename VARCHAR(255) DEFAULT '',
    jibri_provisioningstatus VARCHAR(50) DEFAULT '',
    jibri_provisioningerror TEXT,
    jibri_xmpp_pass VARCHAR(64) DEFAULT '',
    jibri_recorder_pass VARCHAR(64) DEFAULT '',
    gcs_enabled SMALLINT NOT NULL DEFAULT 0,
    gcs_bucket VARCHAR(255) DEFAULT '',
    machine_type VARCHAR(50) NOT NULL DEFAULT 'e2-standard-4',
    jibri_image VARCHAR(255) DEFAULT '',
    jibri_pool_size SMALLINT NOT NULL DEFAULT 1,
    timecreated BIGINT NOT NULL DEFAULT 0,
    timemodified BIGINT NOT NULL DEFAULT 0
"""
# The table as upgrade step 2025101401 creates it on an old site: no
# provisioningstatus, no GCP or Jibri columns.
_OLD_SERVERS_COLUMNS = """
    name VARCHAR(255),
    type SMALLINT NOT NULL DEFAULT 0,
    domain VARCHAR(255),
    appid VARCHAR(255),
    secret VARCHAR(255),
    eightbyeightappid VARCHAR(255),
    eightbyeightapikeyid VARCHAR(255),
    privatekey TEXT,
    timecreated BIGINT NOT NULL DEFAULT 0,
    timemodified BIGINT NOT NULL DEFAULT 0
"""
# Moodle core's config_plugins (lib/db/install.xml): unique (plugin, name).
_CONFIG_PLUGINS_COLUMNS = """
    plugin VARCHAR(100) NOT NULL DEFAULT 'core',
    name VARCHAR(100) NOT NULL,
    value TEXT NOT NULL
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


@dataclass
class Database:
    """A running database: how to reach it, and the superuser's connection for the test."""

    kind: str  # "postgresql" or "mariadb"
    host: str
    port: int
    socket_dir: Path
    prefix: str
    process: subprocess.Popen[bytes]
    _admin: Any = field(repr=False)
    # How to start the server again (``restart``): its command line, its log, a login.
    _argv: list[str] = field(default_factory=list, repr=False)
    _log: Path | None = field(default=None, repr=False)
    _connect: Any = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        """The monitor's DSN (no password: it comes from a file or the environment)."""
        scheme = "postgresql" if self.kind == "postgresql" else "mariadb"
        return f"{scheme}://{MONITOR_USER}@{self.host}:{self.port}/{DB_NAME}"

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run SQL as the superuser (``%s`` placeholders in both); the rows it returns."""
        sql = sql.replace("{prefix}", self.prefix)
        with self._admin.cursor() as cur:
            cur.execute(sql, tuple(params) or None)
            rows = cur.fetchall() if cur.description else []
        self._admin.commit()
        return [tuple(r) for r in rows]

    def add_server(self, **row: object) -> int:
        """Insert a jitsi_servers row; its id."""
        row.setdefault("timecreated", 0)
        row.setdefault("timemodified", 0)
        names = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        sql = f"INSERT INTO {self.prefix}jitsi_servers ({names}) VALUES ({marks})"
        if self.kind == "postgresql":
            return int(self.execute(sql + " RETURNING id", list(row.values()))[0][0])
        self.execute(sql, list(row.values()))
        return int(self.execute("SELECT LAST_INSERT_ID()")[0][0])

    def set_config(self, plugin: str, name: str, value: str) -> None:
        """What Moodle's set_config writes (the test's hand change)."""
        self.execute(
            "DELETE FROM {prefix}config_plugins WHERE plugin = %s AND name = %s", [plugin, name]
        )
        self.execute(
            "INSERT INTO {prefix}config_plugins (plugin, name, value) VALUES (%s, %s, %s)",
            [plugin, name, value],
        )

    def get_config(self, plugin: str, name: str) -> str | None:
        rows = self.execute(
            "SELECT value FROM {prefix}config_plugins WHERE plugin = %s AND name = %s",
            [plugin, name],
        )
        return str(rows[0][0]) if rows else None

    def clear(self) -> None:
        """Empty both tables (a test starts from nothing)."""
        self.execute("DELETE FROM {prefix}jitsi_servers")
        self.execute("DELETE FROM {prefix}config_plugins")

    def create_tables(self, *, old: bool = False) -> None:
        """(Re)create both tables; ``old``: jitsi_servers as an old mod_jitsi had it."""
        self.drop_servers_table()
        self.execute("DROP TABLE IF EXISTS {prefix}config_plugins")
        servers = _OLD_SERVERS_COLUMNS if old else _SERVERS_COLUMNS
        plugins = _CONFIG_PLUGINS_COLUMNS
        serial = "BIGSERIAL"
        if self.kind == "mariadb":
            # XMLDB's text is LONGTEXT on MySQL (TEXT there holds only 64 KB).
            servers = servers.replace(" TEXT", " LONGTEXT")
            plugins = plugins.replace(" TEXT", " LONGTEXT")
            serial = "BIGINT AUTO_INCREMENT"
        self.execute(f"CREATE TABLE {{prefix}}jitsi_servers (id {serial} PRIMARY KEY, {servers})")
        self.execute(
            f"CREATE TABLE {{prefix}}config_plugins (id {serial} PRIMARY KEY, "
            f"{plugins}, UNIQUE (plugin, name))"
        )
        self._grant()

    def drop_servers_table(self) -> None:
        self.execute("DROP TABLE IF EXISTS {prefix}jitsi_servers")

    def _grant(self) -> None:
        # Only SELECT on the two tables: what the docs tell an admin to grant.
        for table in ("jitsi_servers", "config_plugins"):
            if self.kind == "postgresql":
                self.execute(f"GRANT SELECT ON {{prefix}}{table} TO {MONITOR_USER}")
            else:
                self.execute(f"GRANT SELECT ON {DB_NAME}.{{prefix}}{table} TO '{MONITOR_USER}'@'%'")

    def server_pid(self) -> int:
        """The server's own process (for PostgreSQL under runuser, not runuser's)."""
        if self.kind == "postgresql":
            pidfile = self.socket_dir / "data" / "postmaster.pid"
            return int(pidfile.read_text().split("\n", 1)[0])
        return self.process.pid

    def restart(self) -> None:
        """Stop the server (PostgreSQL's fast shutdown: every session ends) and start
        it again on the same port and data; the superuser's connection is made anew."""
        assert self.kind == "postgresql"
        assert self._log is not None
        with contextlib.suppress(Exception):
            self._admin.close()
        _stop(self.process, self.server_pid())
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(self._argv, stdout=out, stderr=subprocess.STDOUT)
        self._admin = _wait_ready(self.process, self._connect, self._log)

    def pause(self) -> None:
        """Stop the server process (SIGSTOP): connections hang, nothing is refused."""
        os.kill(self.server_pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server_pid(), signal.SIGCONT)
        # runuser stops itself when its child stops (as su does): continue it too.
        os.kill(self.process.pid, signal.SIGCONT)


def _run(argv: list[str], *, user: str | None = None, timeout: float = START_TIMEOUT) -> None:
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{argv[0] if user is None else argv[4]} failed ({done.returncode}): "
            f"{done.stderr.decode(errors='replace')[-2000:]}"
        )


def _stop(process: subprocess.Popen[bytes], server_pid: int | None = None) -> None:
    """Stop the server: SIGINT to PostgreSQL's postmaster is its fast shutdown (SIGTERM
    to runuser would be a smart one, waiting for every session), SIGTERM to
    mariadbd; ``process`` is then reaped."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused server (or runuser) handles nothing
            if server_pid is not None:
                os.kill(server_pid, signal.SIGCONT)
                os.kill(server_pid, signal.SIGINT)
            else:
                process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], connect: Any, log: Path) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            return connect()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _pg_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql (scripts/check does)")
    return path


@contextlib.contextmanager
def postgresql(prefix: str = "mdl_") -> Iterator[Database]:
    """A PostgreSQL in a temporary directory, with Moodle's two tables."""
    import psycopg

    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, and postgres runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="jm-pg-"))
    user = "nobody" if _is_root() else None
    data = base / "data"
    log = base / "postgres.log"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    admin: Any = None
    postmaster: int | None = None
    db: Database | None = None
    try:
        _run(
            [
                _pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            user=user,
        )
        argv = [
            _pg_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={base}",
            "-c",
            "fsync=off",
            "-c",
            "shared_buffers=16MB",
            "-c",
            "max_connections=20",
        ]
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

        def connect() -> Any:
            return psycopg.connect(
                host=str(base), port=port, user="postgres", dbname="postgres", connect_timeout=5
            )

        boot = _wait_ready(process, connect, log)
        postmaster = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        boot.autocommit = True
        boot.execute(f"CREATE ROLE {MONITOR_USER} LOGIN PASSWORD '{MONITOR_PASSWORD}'")
        boot.execute(f"CREATE DATABASE {DB_NAME}")
        boot.close()
        admin = psycopg.connect(
            host=str(base), port=port, user="postgres", dbname=DB_NAME, connect_timeout=5
        )
        db = Database("postgresql", "127.0.0.1", port, base, prefix, process, admin)
        db._argv, db._log = argv, log
        db._connect = lambda: psycopg.connect(
            host=str(base), port=port, user="postgres", dbname=DB_NAME, connect_timeout=5
        )
        db.create_tables()
        yield db
    finally:
        if db is not None:  # restarted: its own process and connection now
            process, admin = db.process, db._admin
            with contextlib.suppress(Exception):
                postmaster = db.server_pid()
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
        if process is not None:
            _stop(process, postmaster)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def mariadb(prefix: str = "mdl_") -> Iterator[Database]:
    """A MariaDB in a temporary directory, with Moodle's two tables."""
    import pymysql

    for name in ("mariadb-install-db", "mariadbd"):
        if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists():
            raise RuntimeError(f"{name} not found: install Debian's mariadb-server")
    base = Path(tempfile.mkdtemp(prefix="jm-maria-"))
    data = base / "data"
    sock = base / "mysqld.sock"
    log = base / "mariadb.log"
    port = free_port()
    run_as = ["--user=root"] if _is_root() else []
    process: subprocess.Popen[bytes] | None = None
    admin: Any = None
    try:
        _run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *run_as,
            ]
        )
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        argv = [
            mariadbd,
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={base / 'mariadb.pid'}",
            f"--tmpdir={base}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            "--max-connections=20",
            *run_as,
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

        def connect() -> Any:
            # Probe with our own socket first: a PyMySQL connect that fails leaves its
            # socket to the garbage collector (a ResourceWarning, an error in pytest).
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(sock))
            return pymysql.connect(unix_socket=str(sock), user="root", connect_timeout=5)

        admin = _wait_ready(process, connect, log)
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4")
            cur.execute(f"CREATE USER '{MONITOR_USER}'@'%' IDENTIFIED BY '{MONITOR_PASSWORD}'")
            cur.execute(f"USE {DB_NAME}")
        admin.commit()
        db = Database("mariadb", "127.0.0.1", port, base, prefix, process, admin)
        db.create_tables()
        yield db
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never sends a byte."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # kept open, never read nor written

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
