"""Reading Moodle's database: mod_jitsi's servers and the active one, bounded in time and size.

One read is two ``SELECT``s (the monitor needs ``SELECT`` on ``{prefix}jitsi_servers``
and ``{prefix}config_plugins`` only):

- every ``jitsi_servers`` row, at most ``MAX_ROWS`` + 1, with each char column cut
  to one character more than mod_jitsi's 255 (so a longer value is seen, not used
  cut) and the private key fetched only when at most ``MAX_KEY_CHARS`` long: its
  length is checked in SQL, so a 1 MB key never crosses the wire;
- ``mod_jitsi/server`` from ``config_plugins``.

Drivers (the ``moodle`` extra): psycopg 3 for PostgreSQL, native asyncio, libpq's
own DSN and timeouts, typed (issue 25's HA store uses it too); PyMySQL for
MariaDB/MySQL, pure Python with connect/read/write timeouts, in a thread (a small
read a minute needs no async driver). Both are imported only when a read runs.

Every failure is a ``MoodleReadError`` with a reason from a closed set and a
detail that never holds the password; ``SiteReader`` keeps the last good read
across failures, which is what the caller watches meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from monitor import escape
from monitor.files import UnusableFile, read_secret
from monitor.moodle.servers import (
    MAX_KEY_CHARS,
    MAX_ROWS,
    MoodleServer,
    RawRow,
    RowProblem,
    servers_from_rows,
)

__all__ = [
    "PASSWORD_ENV",
    "PREFIX",
    "Dsn",
    "MoodleReadError",
    "Password",
    "SiteRead",
    "SiteReader",
    "parse_dsn",
    "read_active",
    "read_password",
    "read_site",
]

log = logging.getLogger("monitor.moodle")

PASSWORD_ENV: Final = "JITSI_MONITOR_MOODLE_PASSWORD"
# Interpolated into SQL as a table name: nothing but these characters, ever.
PREFIX: Final = re.compile(r"[a-z0-9_]{0,30}")
_PASSWORD_MAX_BYTES: Final = 4096

ReadReason = Literal[
    "bad_dsn",
    "no_driver",
    "unreachable",
    "timeout",
    "auth",
    "missing_database",
    "permission",
    "missing_table",
    "error",
]


class MoodleReadError(Exception):
    """Moodle's database could not be read: a reason from ``ReadReason`` and a detail."""

    def __init__(self, reason: ReadReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: ReadReason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Password:
    """The database password; shown nowhere."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Password(<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Dsn:
    """A parsed ``postgresql://`` or ``mysql://``/``mariadb://`` DSN, without a password."""

    kind: Literal["postgresql", "mysql"]
    host: str
    port: int
    user: str
    database: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def shown(self) -> str:
        scheme = "postgresql" if self.kind == "postgresql" else "mysql"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.database}"

    def __repr__(self) -> str:
        return f"Dsn({self.shown!r})"


_SCHEMES: Final[Mapping[str, Literal["postgresql", "mysql"]]] = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
# MariaDB/MySQL options a DSN may carry (passed to PyMySQL); PostgreSQL's go to libpq.
_MYSQL_PARAMS: Final = frozenset({"unix_socket", "charset"})


def parse_dsn(text: str) -> Dsn:
    """The DSN's parts; ValueError (never quoting a password) when it is not usable."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(
            "the database DSN is not a URL with a valid port, such as "
            "postgresql://jitsi_monitor@db.example/moodle"
        ) from None
    kind = _SCHEMES.get(parts.scheme.lower())
    if kind is None:
        raise ValueError(
            f"the database DSN must start with postgresql:// or mysql:// (or mariadb://), "
            f"not {escape.plain(parts.scheme, 20)!r}://"
        )
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    if parts.password is not None or any(k == "password" for k, _ in params):
        raise ValueError(
            "the database DSN holds a password: put it in password_file "
            f"or {PASSWORD_ENV} instead (the DSN is shown in logs)"
        )
    if parts.fragment:
        raise ValueError("the database DSN has a #fragment")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError("the database DSN must name the database: scheme://user@host/moodle")
    user = unquote(parts.username or "")
    if not user:
        raise ValueError("the database DSN must name the user: scheme://jitsi_monitor@host/moodle")
    if kind == "mysql":
        unknown = sorted({k for k, _ in params} - _MYSQL_PARAMS)
        if unknown:
            raise ValueError(
                "the MariaDB/MySQL DSN has unknown options "
                f"{', '.join(map(escape.plain, unknown))}; "
                f"known: {', '.join(sorted(_MYSQL_PARAMS))}"
            )
    host = parts.hostname or ""
    if not host and not any(k in ("host", "unix_socket") for k, _ in params):
        raise ValueError("the database DSN must name the host: scheme://user@host/moodle")
    default = 5432 if kind == "postgresql" else 3306
    return Dsn(kind, host, port or default, user, database, params)


def read_password(file: Path | None, env: Mapping[str, str] | None = None) -> Password | None:
    """The password from ``file`` if given, else from ``JITSI_MONITOR_MOODLE_PASSWORD``;
    None when neither (peer or trust authentication).

    The file must be a regular file of at most 4 KiB; one trailing newline is
    dropped. A group- or world-readable file draws a warning.
    """
    if file is not None:
        try:
            data = read_secret(file, _PASSWORD_MAX_BYTES)
        except UnusableFile as exc:
            raise ValueError(f"the password file {file}: {exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # Its own words: the codec's would quote a byte of the password.
            raise ValueError(f"the password file {file} is not UTF-8 text") from None
        return Password(text[:-1] if text.endswith("\n") else text)
    value = (os.environ if env is None else env).get(PASSWORD_ENV)
    return Password(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class SiteRead:
    """One good read of the site."""

    servers: tuple[MoodleServer, ...]
    problems: tuple[RowProblem, ...]
    active_id: int | None  # mod_jitsi/server as a row id; None when unset or not a number
    read_at: float  # time.time() of the read


def _rows_sql(prefix: str, provisioning: bool) -> str:
    cut = 256  # one more than mod_jitsi's char(255): a longer value is seen, not used cut

    def text(column: str, width: int = cut) -> str:
        return f"LEFT(COALESCE({column}, ''), {width})"

    columns = [
        "id",
        text("name"),
        "type",
        text("domain"),
        text("appid"),
        text("secret"),
        text("eightbyeightappid"),
        text("eightbyeightapikeyid"),
        f"CASE WHEN CHAR_LENGTH(privatekey) <= {MAX_KEY_CHARS} THEN privatekey END",
        "COALESCE(CHAR_LENGTH(privatekey), 0)",
    ]
    if provisioning:  # added by mod_jitsi's upgrade 2025122303
        columns.append(text("provisioningstatus", 64))
    return (
        f"SELECT {', '.join(columns)} FROM {prefix}jitsi_servers ORDER BY id LIMIT {MAX_ROWS + 1}"
    )


def _active_sql(prefix: str) -> str:
    return (
        f"SELECT LEFT(value, 64) FROM {prefix}config_plugins "
        "WHERE plugin = 'mod_jitsi' AND name = 'server'"
    )


def _raw(row: Sequence[Any]) -> RawRow:
    return RawRow(
        id=int(row[0]),
        name=str(row[1]),
        type=int(row[2]),
        domain=str(row[3]),
        appid=str(row[4]),
        secret=str(row[5]),
        eightbyeightappid=str(row[6]),
        eightbyeightapikeyid=str(row[7]),
        privatekey=None if row[8] is None else str(row[8]),
        privatekey_chars=int(row[9]),
        provisioningstatus=str(row[10]) if len(row) > 10 else "",
    )


def _scrub(text: object, password: Password | None) -> str:
    """A driver's message, fit for a log line, without the password in it."""
    shown = str(text)
    if password is not None and password.value:
        shown = shown.replace(password.value, "<hidden>")
    return escape.plain(" ".join(shown.split()), 300)


# --- PostgreSQL (psycopg 3) -------------------------------------------------------------


async def _pg_read(
    dsn: Dsn,
    password: Password | None,
    prefix: str,
    connect_timeout: float,
    query_timeout: float,
    with_rows: bool,
) -> tuple[list[Sequence[Any]], str | None]:
    try:
        import psycopg
        from psycopg import errors
    except ImportError:
        raise MoodleReadError(
            "no_driver", "psycopg is not installed: pip install 'jitsi-monitor[moodle]'"
        ) from None
    params: dict[str, Any] = dict(dsn.params)
    if dsn.host:
        params.setdefault("host", dsn.host)
    params.update(
        port=dsn.port,
        user=dsn.user,
        dbname=dsn.database,
        connect_timeout=max(1, round(connect_timeout)),
        application_name="jitsi-monitor",
        options=f"-c statement_timeout={int(query_timeout * 1000)}",
    )
    if password is not None:
        params["password"] = password.value
    try:
        conn = await psycopg.AsyncConnection.connect(autocommit=True, **params)
    except psycopg.OperationalError as exc:
        raise _pg_connect_error(exc, password) from None
    except psycopg.Error as exc:
        raise MoodleReadError("error", _scrub(exc, password)) from None
    try:
        async with conn:
            try:
                rows: list[Sequence[Any]] = []
                if with_rows:
                    try:
                        rows = await (await conn.execute(_rows_sql(prefix, True))).fetchall()
                    except errors.UndefinedColumn:
                        rows = await (await conn.execute(_rows_sql(prefix, False))).fetchall()
                found = await (await conn.execute(_active_sql(prefix))).fetchone()
            except errors.UndefinedTable as exc:
                raise _missing_table(prefix, exc, password) from None
            except errors.UndefinedColumn as exc:
                raise MoodleReadError(
                    "missing_table",
                    f"a column mod_jitsi's {prefix}jitsi_servers has is missing "
                    f"(mod_jitsi too old?): {_scrub(exc, password)}",
                ) from None
            except errors.InsufficientPrivilege as exc:
                raise _permission(prefix, exc, password) from None
            except errors.QueryCanceled:
                raise MoodleReadError(
                    "timeout", f"the query took longer than {query_timeout:g} s"
                ) from None
            except psycopg.Error as exc:
                raise MoodleReadError("error", _scrub(exc, password)) from None
    except psycopg.OperationalError as exc:  # the connection broke while closing
        raise MoodleReadError("unreachable", _scrub(exc, password)) from None
    return list(rows), None if found is None else str(found[0])


def _pg_connect_error(exc: Exception, password: Password | None) -> MoodleReadError:
    text = str(exc)
    lower = text.lower()
    detail = _scrub(text, password)
    if "password" in lower or "authentication" in lower or "pg_hba.conf" in lower:
        return MoodleReadError("auth", f"the database refused the login: {detail}")
    if "database" in lower and "does not exist" in lower:
        return MoodleReadError("missing_database", detail)
    if "timeout" in lower or "timed out" in lower:
        return MoodleReadError("timeout", f"connecting took too long: {detail}")
    return MoodleReadError("unreachable", detail)


def _missing_table(prefix: str, exc: Exception, password: Password | None) -> MoodleReadError:
    return MoodleReadError(
        "missing_table",
        f"{prefix}jitsi_servers or {prefix}config_plugins is missing: is mod_jitsi installed "
        f"(2025101401 or later) and the prefix {prefix!r} right? ({_scrub(exc, password)})",
    )


def _permission(
    prefix: str, exc: Exception, password: Password | None, *, or_missing: bool = False
) -> MoodleReadError:
    # MariaDB/MySQL answer "denied" for a table the user has no grant on, whether
    # it exists or not: the prefix may be the fault as well.
    maybe = f" (or they do not exist: is the prefix {prefix!r} right?)" if or_missing else ""
    return MoodleReadError(
        "permission",
        f"the user may not read {prefix}jitsi_servers and {prefix}config_plugins{maybe}: "
        f"GRANT SELECT on both ({_scrub(exc, password)})",
    )


# --- MariaDB/MySQL (PyMySQL in a thread) -----------------------------------------------


def _mysql_read(
    dsn: Dsn,
    password: Password | None,
    prefix: str,
    connect_timeout: float,
    query_timeout: float,
    with_rows: bool,
) -> tuple[list[Sequence[Any]], str | None]:
    try:
        import pymysql
    except ImportError:
        raise MoodleReadError(
            "no_driver", "PyMySQL is not installed: pip install 'jitsi-monitor[moodle]'"
        ) from None
    options = dict(dsn.params)
    try:
        conn = pymysql.connect(
            host=dsn.host or None,
            port=dsn.port,
            user=dsn.user,
            password=password.value if password is not None else "",
            database=dsn.database,
            unix_socket=options.get("unix_socket"),
            charset=options.get("charset", "utf8mb4"),
            connect_timeout=max(1, round(connect_timeout)),
            # The handshake and every reply are bounded by these: a stalled server ends here.
            read_timeout=max(1, round(query_timeout)),
            write_timeout=max(1, round(query_timeout)),
            autocommit=True,
        )
    except pymysql.MySQLError as exc:
        raise _mysql_error(exc, password, prefix, connecting=True) from None
    try:
        with conn.cursor() as cur:
            rows: list[Sequence[Any]] = []
            if with_rows:
                try:
                    cur.execute(_rows_sql(prefix, True))
                except pymysql.err.OperationalError as exc:
                    if exc.args and exc.args[0] == 1054:  # unknown column: an older mod_jitsi
                        cur.execute(_rows_sql(prefix, False))
                    else:
                        raise
                rows = list(cur.fetchall())
            cur.execute(_active_sql(prefix))
            found = cur.fetchone()
    except pymysql.MySQLError as exc:
        raise _mysql_error(exc, password, prefix, connecting=False) from None
    finally:
        with contextlib.suppress(pymysql.MySQLError):
            conn.close()
    return rows, None if found is None else str(found[0])


def _mysql_error(
    exc: Exception, password: Password | None, prefix: str, *, connecting: bool
) -> MoodleReadError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = _scrub(exc.args[1] if len(exc.args) > 1 else exc, password)
    lower = detail.lower()
    if code == 1045:
        return MoodleReadError("auth", f"the database refused the login: {detail}")
    if code == 1049:
        return MoodleReadError("missing_database", detail)
    if code in (1044, 1142, 1143):
        return _permission(prefix, exc, password, or_missing=code != 1044)
    if code in (1146, 1054):
        return _missing_table(prefix, exc, password)
    if "timed out" in lower or "timeout" in lower or code == 2013:
        what = "connecting" if connecting else "the query"
        return MoodleReadError("timeout", f"{what} took too long: {detail}")
    if code in (2003, 2002, 2006) or connecting:
        return MoodleReadError("unreachable", detail)
    return MoodleReadError("error", detail)


# --- one read ----------------------------------------------------------------------------


async def _fetch(
    dsn: Dsn,
    password: Password | None,
    prefix: str,
    connect_timeout: float,
    query_timeout: float,
    *,
    with_rows: bool = True,
) -> tuple[list[Sequence[Any]], str | None]:
    if not PREFIX.fullmatch(prefix):
        raise MoodleReadError(
            "bad_dsn", "the table prefix may hold only a-z, 0-9 and _ (at most 30)"
        )
    # A backstop over the drivers' own timeouts: the read ends, whatever the server does.
    budget = connect_timeout + 2 * query_timeout + 1
    try:
        async with asyncio.timeout(budget):
            if dsn.kind == "postgresql":
                return await _pg_read(
                    dsn, password, prefix, connect_timeout, query_timeout, with_rows
                )
            return await asyncio.to_thread(
                _mysql_read, dsn, password, prefix, connect_timeout, query_timeout, with_rows
            )
    except TimeoutError:
        raise MoodleReadError(
            "timeout", f"no answer from {dsn.host or 'the socket'}:{dsn.port} in {budget:g} s"
        ) from None


def _active(value: str | None) -> tuple[int | None, RowProblem | None]:
    if value is None:
        return None, RowProblem(None, "active_server", "mod_jitsi/server is not set")
    text = value.strip()
    if text.isascii() and text.isdigit():
        return int(text), None
    shown = escape.plain(text, 40)
    return None, RowProblem(
        None, "active_server", f"mod_jitsi/server holds {shown!r}, not a row id"
    )


async def read_site(
    dsn: Dsn,
    password: Password | None,
    *,
    prefix: str = "mdl_",
    url_template: str = "https://{domain}/",
    connect_timeout: float = 5.0,
    query_timeout: float = 10.0,
) -> SiteRead:
    """Every jitsi_servers row and mod_jitsi/server; MoodleReadError when unreadable."""
    rows, value = await _fetch(dsn, password, prefix, connect_timeout, query_timeout)
    active_id, note = _active(value)
    extra: list[RowProblem] = [] if note is None else [note]
    if len(rows) > MAX_ROWS:
        rows = rows[:MAX_ROWS]
        extra.append(
            RowProblem(
                None,
                "too_many_rows",
                f"{prefix}jitsi_servers has more than {MAX_ROWS} rows; "
                f"the first {MAX_ROWS} by id are watched",
            )
        )
    servers, problems = servers_from_rows(
        (_raw(r) for r in rows), url_template=url_template, active_id=active_id
    )
    return SiteRead(servers, problems + tuple(extra), active_id, time.time())


async def read_active(
    dsn: Dsn,
    password: Password | None,
    *,
    prefix: str = "mdl_",
    connect_timeout: float = 5.0,
    query_timeout: float = 10.0,
) -> int | None:
    """mod_jitsi/server alone (the switch's read-back); None when unset or not a row id."""
    _, value = await _fetch(dsn, password, prefix, connect_timeout, query_timeout, with_rows=False)
    return _active(value)[0]


class SiteReader:
    """Reads the site again and again; keeps the last good read through failures."""

    def __init__(
        self,
        dsn: Dsn,
        password: Callable[[], Password | None],
        *,
        prefix: str = "mdl_",
        url_template: str = "https://{domain}/",
        connect_timeout: float = 5.0,
        query_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self._password = password  # called at each read: a rotated password is picked up
        self.prefix = prefix
        self.url_template = url_template
        self.connect_timeout = connect_timeout
        self.query_timeout = query_timeout
        self.last_good: SiteRead | None = None
        self.last_error: MoodleReadError | None = None
        self.last_attempt: float | None = None

    def __repr__(self) -> str:
        return f"SiteReader({self.dsn.shown!r}, prefix={self.prefix!r})"

    @property
    def ok(self) -> bool:
        """Whether the latest attempt succeeded."""
        return self.last_attempt is not None and self.last_error is None

    async def active(self) -> int | None:
        """mod_jitsi/server alone, now (the switch's read-back); MoodleReadError when unreadable."""
        try:
            password = self._password()
        except (OSError, ValueError) as exc:
            raise MoodleReadError(
                "auth", f"the password cannot be read: {escape.plain(exc, 200)}"
            ) from None
        return await read_active(
            self.dsn,
            password,
            prefix=self.prefix,
            connect_timeout=self.connect_timeout,
            query_timeout=self.query_timeout,
        )

    async def read(self) -> SiteRead | None:
        """Read now; the last good read (this one if it succeeded), None if there was none."""
        self.last_attempt = time.time()
        try:
            try:
                password = self._password()
            except (OSError, ValueError) as exc:
                raise MoodleReadError(
                    "auth", f"the password cannot be read: {escape.plain(exc, 200)}"
                ) from None
            site = await read_site(
                self.dsn,
                password,
                prefix=self.prefix,
                url_template=self.url_template,
                connect_timeout=self.connect_timeout,
                query_timeout=self.query_timeout,
            )
        except MoodleReadError as exc:
            if self.last_error is None or self.last_error.reason != exc.reason:
                log.warning(
                    "moodle: reading %s failed (%s): %s; keeping the last good rows",
                    self.dsn.shown,
                    exc.reason,
                    exc.detail,
                )
            self.last_error = exc
            return self.last_good
        if self.last_error is not None:
            log.info("moodle: reading %s works again", self.dsn.shown)
        self.last_error = None
        self.last_good = site
        return site
