"""A stand-in Moodle root for the switch tests: ``config.php`` and ``admin/cli/cfg.php`` in PHP.

``cfg.php`` (``moodle_cfg.php`` here) takes Moodle's options (``--component``,
``--name``, ``--set``, ``--unset``, ``--no-eol``, ``--help``) and keeps Moodle's exit codes, as in
moodle/moodle ``admin/cli/cfg.php`` at c8ead2012272ebd904f3029c9dc31564d47421e5:

- ``--set``/``--unset``: 4 when the name is hard-set in config.php
  (``array_key_exists($name, $CFG->config_php_settings)``), else ``set_config``
  and 0;
- read: the value (``get_config``, which honours
  ``$CFG->forced_plugin_settings``) and 0, or 3 when unset;
- 2 for a usage error, 1 for an unknown option or a database error.

It writes ``{prefix}config_plugins`` of the test's PostgreSQL or MariaDB with
PHP's own drivers (Debian's php-pgsql, php-mysql), as the superuser over the
unix socket, as Moodle would with its own database user. Run by the real
``php`` (Debian's php-cli).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.databases import DB_NAME, Database

__all__ = ["make_site"]

_CFG_PHP = Path(__file__).with_name("moodle_cfg.php")


def make_site(
    root: Path,
    db: Database,
    *,
    hard_set: str | None = None,
    forced: str | None = None,
    hang: bool = False,
    fail: bool = False,
) -> Path:
    """A Moodle root under ``root`` writing to ``db``; its path.

    ``hard_set``: ``$CFG->server`` in config.php (cfg.php exits 4);
    ``forced``: ``$CFG->forced_plugin_settings['mod_jitsi']['server']``;
    ``hang``: config.php never returns; ``fail``: config.php dies with exit 1.
    """
    (root / "admin" / "cli").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_CFG_PHP, root / "admin" / "cli" / "cfg.php")
    if db.kind == "postgresql":
        connection = (
            f"$CFG->dbtype = 'pgsql';\n$CFG->dbhost = '{db.socket_dir}';\n"
            f"$CFG->dbport = {db.port};\n$CFG->dbuser = 'postgres';\n"
        )
    else:
        connection = (
            f"$CFG->dbtype = 'mariadb';\n$CFG->dbsocket = '{db.socket_dir / 'mysqld.sock'}';\n"
            "$CFG->dbuser = 'root';\n"
        )
    lines = [
        "<?php",
        "unset($CFG);",
        "global $CFG;",
        "$CFG = new stdClass();",
        connection,
        f"$CFG->dbname = '{DB_NAME}';",
        f"$CFG->prefix = '{db.prefix}';",
    ]
    if hard_set is not None:
        lines.append(f"$CFG->server = '{hard_set}';")
    if forced is not None:
        lines.append(f"$CFG->forced_plugin_settings = ['mod_jitsi' => ['server' => '{forced}']];")
    # As Moodle's setup.php does: what config.php set is config_php_settings.
    lines.append("$CFG->config_php_settings = get_object_vars($CFG);")
    if hang:
        lines.append("sleep(3600);")
    if fail:
        lines.append('fwrite(STDERR, "Fatal error: database is read-only\\n"); exit(1);')
    (root / "config.php").write_text("\n".join(lines) + "\n")
    return root
