"""The ``ha:`` block of servers.yaml: the PostgreSQL database several ``serve`` share.

```yaml
ha:
  database: postgresql://jitsi_monitor@db.example/jitsi_monitor
  password_file: /etc/jitsi-monitor/ha-db-password   # or JITSI_MONITOR_HA_PASSWORD
  lease: 15s
  instance: mon-a          # default: host name and pid
  shards: 1
```

Only the shape is checked here (``validate`` connects to nothing); ``settings``
reads the password; the service builds ``monitor.ha``'s settings from both. A wrong or
unreachable database, or missing rights, is an error when ``serve`` starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, field_validator

from monitor.files import UnusableFile, read_secret
from monitor.moodle.database import Dsn, Password, parse_dsn
from monitor.units import Duration

__all__ = ["PASSWORD_ENV", "HaConfig"]

PASSWORD_ENV: Final = "JITSI_MONITOR_HA_PASSWORD"
_PASSWORD_MAX_BYTES: Final = 4096
# The lease's bounds: under 3 s the heartbeat (a fifth) nears a busy loop's lag;
# over 5 min a dead leader leaves the pools unwatched too long.
MIN_LEASE: Final = 3.0
MAX_LEASE: Final = 300.0
# Each shard is an advisory lock and a claim at a heartbeat: a few dozen is plenty
# (a shard per instance at the most, with room to grow).
MAX_SHARDS: Final = 256
# An instance's name: shown on /healthz and in the database; no spaces or quotes.
_INSTANCE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class HaConfig(BaseModel):
    """Several ``serve`` on one PostgreSQL: one leader decides and notifies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str
    password_file: Path | None = None
    lease: Duration = 15.0
    instance: str | None = None
    shards: int = 1

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        dsn = parse_dsn(value)  # its ValueError never quotes a password
        if dsn.kind != "postgresql":
            raise ValueError("ha.database must be PostgreSQL: postgresql://user@host/db")
        return value.strip()

    @field_validator("lease")
    @classmethod
    def _lease(cls, value: float) -> float:
        if not MIN_LEASE <= value <= MAX_LEASE:
            raise ValueError(f"lease must be from {MIN_LEASE:g}s to {MAX_LEASE / 60:g}m")
        return value

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value is not None and not _INSTANCE.fullmatch(value):
            raise ValueError(
                "instance must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("shards")
    @classmethod
    def _shards(cls, value: int) -> int:
        if not 1 <= value <= MAX_SHARDS:
            raise ValueError(f"shards must be from 1 to {MAX_SHARDS}")
        return value

    def dsn(self) -> Dsn:
        return parse_dsn(self.database)

    def password(self, base: Path, env: Mapping[str, str] | None = None) -> Password | None:
        """The password from the file (relative to ``base``), else ``JITSI_MONITOR_HA_PASSWORD``;
        None when neither. ValueError naming what is wrong (never the password)."""
        password: Password | None = None
        if self.password_file is not None:
            path = base / self.password_file
            try:
                data = read_secret(path)
            except UnusableFile as exc:
                raise ValueError(f"ha.password_file {path}: {exc}") from None
            except OSError as exc:
                raise ValueError(f"ha.password_file {path}: {exc.strerror or exc}") from None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                # Our own words: the codec's would quote a byte of the password.
                raise ValueError(f"ha.password_file {path} is not UTF-8 text") from None
            password = Password(text[:-1] if text.endswith("\n") else text)
        else:
            value = (os.environ if env is None else env).get(PASSWORD_ENV)
            password = Password(value) if value is not None else None
        return password
