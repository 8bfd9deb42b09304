"""Switching Moodle's Jitsi server the supported way: ``admin/cli/cfg.php``, then a read-back.

The command is ``<php> <dir>/admin/cli/cfg.php --component=mod_jitsi --name=server
--set=<id>``, run as ``run_as`` through ``runuser -u USER --`` when given (the web
server's user, who owns Moodle's cache). ``cfg.php`` calls ``set_config``, which
also clears Moodle's config cache; a plain ``UPDATE`` would leave it stale.

What Moodle's cfg.php does (moodle/moodle admin/cli/cfg.php at
c8ead2012272ebd904f3029c9dc31564d47421e5): exit 0 after ``set_config``; exit 4 when
the *name* is hard-set in config.php (``$CFG->config_php_settings``, so a
``$CFG->server`` there); exit 2 for a usage error, 1 for anything unexpected. A
``$CFG->forced_plugin_settings['mod_jitsi']['server']`` does *not* give exit 4:
``set_config`` writes the table, but ``get_config`` (what a join reads) still
returns the forced value. So the switch counts as done only when both agree:

1. Moodle's own view, ``cfg.php --component=mod_jitsi --name=server --no-eol``;
2. the database, through the caller's ``read_back`` (the reader's query).

Each run is bounded: a timeout kills the whole process group, and the output
kept is at most ``OUTPUT_MAX_BYTES``, escaped for a log line. The child gets
only ``CHILD_ENV`` of the monitor's environment: the rest holds secrets (the
database passwords, and token keys and webhook secrets under whatever names
``secret_env`` gives them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from monitor import escape
from monitor.moodle.database import MoodleReadError

__all__ = [
    "OUTPUT_MAX_BYTES",
    "CfgRun",
    "SwitchCommand",
    "SwitchOutcome",
    "run_cfg",
    "switch_server",
]

OUTPUT_MAX_BYTES: Final = 8 * 1024
# What cfg.php is given of the monitor's environment (as notify's commands are).
CHILD_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_SHOWN_CHARS: Final = 500
EXIT_FORCED: Final = 4

SwitchResult = Literal["done", "forced", "failed", "timeout", "missing", "not_applied"]


@dataclass(frozen=True, slots=True)
class SwitchCommand:
    """How to run Moodle's cfg.php on this machine."""

    php: Path
    dir: Path  # the Moodle root: it holds admin/cli/cfg.php and config.php
    run_as: str | None = None
    timeout: float = 60.0

    @property
    def cfg_php(self) -> Path:
        return self.dir / "admin" / "cli" / "cfg.php"

    def argv(self, *options: str) -> list[str]:
        base = [str(self.php), str(self.cfg_php), *options]
        return ["runuser", "-u", self.run_as, "--", *base] if self.run_as else base


@dataclass(frozen=True, slots=True)
class CfgRun:
    """One run of cfg.php: its exit code (None: killed at the timeout) and its output."""

    exit_code: int | None
    output: str  # stdout and stderr, at most OUTPUT_MAX_BYTES, escaped for a log line


@dataclass(frozen=True, slots=True)
class SwitchOutcome:
    """What a switch did, in words an admin can act on."""

    result: SwitchResult
    server_id: int
    detail: str
    exit_code: int | None = None

    @property
    def done(self) -> bool:
        return self.result == "done"


def _missing(command: SwitchCommand) -> str | None:
    """Why the command cannot run at all; None when it can."""
    php = command.php
    found = str(php) if php.is_absolute() else shutil.which(str(php))
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        return f"php is not an executable file at {escape.plain(php, 200)}"
    if not command.cfg_php.is_file():
        return (
            f"there is no admin/cli/cfg.php under {escape.plain(command.dir, 200)}: "
            "dir must be the Moodle root"
        )
    if command.run_as and shutil.which("runuser") is None:
        return "run_as needs runuser (util-linux), which is not installed"
    return None


async def run_cfg(command: SwitchCommand, *options: str) -> CfgRun:
    """Run cfg.php with ``options``; killed with its children at ``command.timeout``."""
    env = {k: v for k, v in os.environ.items() if k in CHILD_ENV}
    process = await asyncio.create_subprocess_exec(
        *command.argv(*options),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(command.dir),
        env=env,
        start_new_session=True,  # its own process group: a timeout kills php and runuser both
    )
    assert process.stdout is not None
    kept = bytearray()

    async def drain() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            # Keep the head, drop the rest: a child must never block on a full pipe.
            kept.extend(chunk[: max(0, OUTPUT_MAX_BYTES - len(kept))])
        await process.wait()

    try:
        async with asyncio.timeout(command.timeout):
            await drain()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return CfgRun(None, _shown(kept))
    return CfgRun(process.returncode, _shown(kept))


def _shown(data: bytes | bytearray) -> str:
    return escape.plain(bytes(data).decode("utf-8", errors="replace").strip(), _SHOWN_CHARS)


async def switch_server(
    command: SwitchCommand,
    server_id: int,
    read_back: Callable[[], Awaitable[int | None]],
) -> SwitchOutcome:
    """Set mod_jitsi/server to ``server_id`` through cfg.php; done only when Moodle says so.

    ``read_back`` reads mod_jitsi/server from the database (``database.read_active``);
    when it raises ``MoodleReadError`` the switch is not counted as done.
    """
    why = _missing(command)
    if why is not None:
        return SwitchOutcome("missing", server_id, why)
    run = await run_cfg(command, "--component=mod_jitsi", "--name=server", f"--set={server_id}")
    if run.exit_code is None:
        return SwitchOutcome(
            "timeout",
            server_id,
            f"cfg.php did not end within {command.timeout:g} s and was killed"
            + (f"; it wrote: {run.output}" if run.output else ""),
        )
    if run.exit_code == EXIT_FORCED:
        return SwitchOutcome(
            "forced",
            server_id,
            "Moodle refuses: the setting is hard-set in config.php (cfg.php exit 4); "
            "remove it there to let the monitor switch",
            EXIT_FORCED,
        )
    if run.exit_code != 0:
        return SwitchOutcome(
            "failed",
            server_id,
            f"cfg.php exited with {run.exit_code}" + (f": {run.output}" if run.output else ""),
            run.exit_code,
        )
    # Moodle's view first: get_config honours forced_plugin_settings, the table does not.
    view = await run_cfg(command, "--component=mod_jitsi", "--name=server", "--no-eol")
    if view.exit_code == 0 and view.output != str(server_id):
        return SwitchOutcome(
            "forced",
            server_id,
            f"cfg.php set {server_id} but Moodle still uses {view.output!r}: "
            "mod_jitsi/server is forced in config.php ($CFG->forced_plugin_settings)",
            0,
        )
    if view.exit_code != 0:
        return SwitchOutcome(
            "not_applied",
            server_id,
            "cfg.php set the value but reading it back through cfg.php "
            + ("timed out" if view.exit_code is None else f"exited with {view.exit_code}"),
            view.exit_code,
        )
    try:
        stored = await read_back()
    except MoodleReadError as exc:  # worded and scrubbed by the reader
        return SwitchOutcome(
            "not_applied",
            server_id,
            f"cfg.php set the value but the database read-back failed: {escape.plain(exc, 300)}",
            0,
        )
    if stored != server_id:
        return SwitchOutcome(
            "not_applied",
            server_id,
            f"cfg.php exited 0 but the database holds {stored!r} for mod_jitsi/server",
            0,
        )
    return SwitchOutcome("done", server_id, f"mod_jitsi/server is {server_id}", 0)
