"""The ``moodle:`` block of servers.yaml: where Moodle's database is, and how to switch its server.

```yaml
moodle:
  database: postgresql://jitsi_monitor@db.example/moodle   # or mysql://... (MariaDB/MySQL)
  password_file: /etc/jitsi-monitor/moodle-db-password      # or JITSI_MONITOR_MOODLE_PASSWORD
  prefix: mdl_
  url: "https://{domain}/"
  interval: 60s
  pool: moodle
  switch: when_down           # when_down | better | never
  php: /usr/bin/php
  dir: /var/www/moodle
  run_as: www-data            # optional
```

Only the shape and the values are checked here; ``dsn()`` and ``switch_command()``
turn the block into ``monitor.moodle``'s values. The block is not yet a field of
``MonitorConfig``: adding it is the line ``moodle: MoodleConfig | None = None``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from monitor.config.values import NAME, Duration
from monitor.moodle.database import PREFIX, Dsn, parse_dsn
from monitor.moodle.switch import SwitchCommand

__all__ = ["MoodleConfig"]

# A login name as useradd accepts it (Debian's default NAME_REGEX, plus a trailing $).
_USER: Final = re.compile(r"[a-z_][a-z0-9_-]{0,30}\$?")


class MoodleConfig(BaseModel):
    """Moodle with mod_jitsi: its servers are read from its database, its server switched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str
    password_file: Path | None = None
    prefix: str = "mdl_"
    url: str = "https://{domain}/"
    interval: Duration = 60.0
    pool: str = "moodle"
    switch: Literal["when_down", "better", "never"] = "when_down"
    php: Path = Path("/usr/bin/php")
    dir: Path | None = None
    run_as: str | None = None

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        parse_dsn(value)  # its ValueError never quotes a password
        return value.strip()

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not PREFIX.fullmatch(value):
            raise ValueError(
                "the table prefix may hold only a-z, 0-9 and _ (at most 30), such as mdl_"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.count("{domain}") != 1:
            raise ValueError("url must hold {domain} once, such as 'https://{domain}/'")
        parts = urlsplit(value.replace("{domain}", "meet.example"))
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("url must be an http(s) URL such as 'https://{domain}/'")
        if "{" in value.replace("{domain}", "") or "}" in value.replace("{domain}", ""):
            raise ValueError("url knows only {domain}")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        if not 5 <= value <= 86400:
            raise ValueError("interval must be from 5s to 24h")
        return value

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError(
                "pool must be 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("php")
    @classmethod
    def _php(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("php must be an absolute path, such as /usr/bin/php")
        return value

    @field_validator("run_as")
    @classmethod
    def _run_as(cls, value: str | None) -> str | None:
        if value is not None and not _USER.fullmatch(value):
            raise ValueError("run_as must be a user name, such as www-data")
        return value

    @model_validator(mode="after")
    def _switching_needs_dir(self) -> MoodleConfig:
        if self.switch != "never" and self.dir is None:
            raise ValueError(
                f"switch: {self.switch} needs dir, the Moodle root that holds "
                "admin/cli/cfg.php (or set switch: never to only report)"
            )
        if self.dir is not None and not self.dir.is_absolute():
            raise ValueError("dir must be an absolute path, such as /var/www/moodle")
        return self

    def dsn(self) -> Dsn:
        return parse_dsn(self.database)

    def switch_command(self) -> SwitchCommand | None:
        """The cfg.php command; None with ``switch: never``."""
        if self.switch == "never" or self.dir is None:
            return None
        return SwitchCommand(self.php, self.dir, self.run_as)
