"""Switching mod_jitsi/server through a stand-in admin/cli/cfg.php run by real PHP (issue 24).

The stand-in keeps Moodle's options and exit codes (moodle/moodle admin/cli/cfg.php
at c8ead2012272ebd904f3029c9dc31564d47421e5) and writes the test's PostgreSQL or
MariaDB (tests/support/moodle_site.py); the read-back goes through the monitor's
own reader.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from monitor.moodle.database import Password, parse_dsn, read_active
from monitor.moodle.switch import OUTPUT_MAX_BYTES, SwitchCommand, run_cfg, switch_server
from tests.support.databases import MONITOR_PASSWORD, Database
from tests.support.moodle_site import make_site

PHP = Path(shutil.which("php") or "/usr/bin/php")


def _read_back(db: Database) -> Callable[[], Awaitable[int | None]]:
    async def read() -> int | None:
        return await read_active(parse_dsn(db.dsn), Password(MONITOR_PASSWORD))

    return read


def _two_rows(db: Database) -> tuple[int, int]:
    first = db.add_server(name="A", type=0, domain="a.lab.test")
    second = db.add_server(name="B", type=0, domain="b.lab.test")
    db.set_config("mod_jitsi", "server", str(first))
    return first, second


async def test_the_switch_sets_the_server_and_reads_it_back(db: Database, tmp_path: Path) -> None:
    first, second = _two_rows(db)
    command = SwitchCommand(PHP, make_site(tmp_path, db))
    outcome = await switch_server(command, second, _read_back(db))
    assert outcome.done, outcome.detail
    assert db.get_config("mod_jitsi", "server") == str(second)
    # And back, through the same command.
    outcome = await switch_server(command, first, _read_back(db))
    assert outcome.done
    assert db.get_config("mod_jitsi", "server") == str(first)


async def test_run_as_goes_through_runuser(db: Database, tmp_path: Path) -> None:
    if shutil.which("runuser") is None:
        pytest.skip("runuser (util-linux) is not installed")
    _, second = _two_rows(db)
    site = make_site(tmp_path / "moodle", db)
    tmp_path.chmod(0o755)
    command = SwitchCommand(PHP, site, run_as="root")
    outcome = await switch_server(command, second, _read_back(db))
    assert outcome.done, outcome.detail
    assert command.argv("--x")[:4] == ["runuser", "-u", "root", "--"]


async def test_a_setting_hard_set_in_config_php_is_exit_4(db: Database, tmp_path: Path) -> None:
    first, second = _two_rows(db)
    command = SwitchCommand(PHP, make_site(tmp_path, db, hard_set=str(first)))
    outcome = await switch_server(command, second, _read_back(db))
    assert outcome.result == "forced"
    assert outcome.exit_code == 4
    assert "hard-set in config.php" in outcome.detail
    assert db.get_config("mod_jitsi", "server") == str(first)


async def test_a_forced_plugin_setting_is_not_done(db: Database, tmp_path: Path) -> None:
    # cfg.php exits 0 and the table changes, but Moodle keeps using the forced value.
    first, second = _two_rows(db)
    command = SwitchCommand(PHP, make_site(tmp_path, db, forced=str(first)))
    outcome = await switch_server(command, second, _read_back(db))
    assert outcome.result == "forced"
    assert "forced_plugin_settings" in outcome.detail
    assert f"still uses '{first}'" in outcome.detail


async def test_a_hanging_cfg_php_is_killed_at_the_timeout(db: Database, tmp_path: Path) -> None:
    first, second = _two_rows(db)
    command = SwitchCommand(PHP, make_site(tmp_path, db, hang=True), timeout=1.0)
    outcome = await switch_server(command, second, _read_back(db))
    assert outcome.result == "timeout"
    assert "killed" in outcome.detail
    assert db.get_config("mod_jitsi", "server") == str(first)


async def test_a_failing_cfg_php_says_its_exit_and_output(db: Database, tmp_path: Path) -> None:
    _, second = _two_rows(db)
    command = SwitchCommand(PHP, make_site(tmp_path, db, fail=True))
    outcome = await switch_server(command, second, _read_back(db))
    assert outcome.result == "failed"
    assert outcome.exit_code == 1
    assert "database is read-only" in outcome.detail


async def test_a_missing_cfg_php_or_php_is_missing(tmp_path: Path) -> None:
    outcome = await switch_server(SwitchCommand(PHP, tmp_path), 3, _never)
    assert outcome.result == "missing"
    assert "no admin/cli/cfg.php" in outcome.detail
    (tmp_path / "admin" / "cli").mkdir(parents=True)
    (tmp_path / "admin" / "cli" / "cfg.php").write_text("<?php\n")
    outcome = await switch_server(SwitchCommand(tmp_path / "no-php", tmp_path), 3, _never)
    assert outcome.result == "missing"
    assert "php is not an executable file" in outcome.detail


async def _never() -> int | None:
    raise AssertionError("no read-back without a run")


async def test_output_is_bounded_and_escaped(tmp_path: Path) -> None:
    (tmp_path / "admin" / "cli").mkdir(parents=True)
    # A cfg.php that floods its output with control characters and exits 1.
    (tmp_path / "admin" / "cli" / "cfg.php").write_text(
        '<?php\nfor ($i = 0; $i < 20000; $i++) { echo "\\x1b[31mred\\r\\n"; }\nexit(1);\n'
    )
    run = await run_cfg(SwitchCommand(PHP, tmp_path), "--name=server")
    assert run.exit_code == 1
    assert "\x1b" not in run.output
    assert "\r" not in run.output
    assert "\\x1b[31mred" in run.output
    assert len(run.output) <= OUTPUT_MAX_BYTES


async def test_the_database_password_is_not_passed_to_php(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JITSI_MONITOR_MOODLE_PASSWORD", "Env-Secret-5531")
    (tmp_path / "admin" / "cli").mkdir(parents=True)
    (tmp_path / "admin" / "cli" / "cfg.php").write_text(
        "<?php\necho getenv('JITSI_MONITOR_MOODLE_PASSWORD') === false ? 'absent' : 'present';\n"
    )
    run = await run_cfg(SwitchCommand(PHP, tmp_path))
    assert (run.exit_code, run.output) == (0, "absent")


async def test_no_secret_of_the_monitors_environment_reaches_php(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Token keys and webhook secrets come from variables the admin names
    (``secret_env``), under any name: cfg.php gets none of the monitor's
    environment but what a command needs."""
    monkeypatch.setenv("MEET_JWT_APP_SECRET", "Token-Secret-8812")
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET", "Hook-Secret-4471")
    (tmp_path / "admin" / "cli").mkdir(parents=True)
    (tmp_path / "admin" / "cli" / "cfg.php").write_text(
        "<?php\nforeach (getenv() as $k => $v) {\n"
        "  if (strpos($v, 'Secret') !== false) { echo \"$k \"; }\n}\n"
        "echo getenv('PATH') === false ? 'no PATH' : 'PATH';\n"
    )
    run = await run_cfg(SwitchCommand(PHP, tmp_path))
    assert (run.exit_code, run.output) == (0, "PATH")
