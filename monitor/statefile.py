"""Files the monitor keeps across restarts, written and read so that they
cannot be turned against it.

- ``write_json_atomic``: a temporary file with a random name is created in
  the target's own directory (``O_CREAT|O_EXCL|O_NOFOLLOW``: never a planted
  file or symbolic link), written, fsynced, renamed over the target (which
  replaces a symbolic link there instead of writing through it), and the
  directory is fsynced.
- ``read_json_bounded``: regular files only, never through a symbolic link,
  at most ``max_bytes`` (``monitor.files.read_regular``: a FIFO, a device or
  a directory is refused without blocking), nesting checked before parsing
  (no RecursionError), no ``NaN``/``Infinity``.
- ``move_aside``: a file that cannot be used is renamed to
  ``<name>.corrupt-<UTC time>`` next to it, with a log line, so that a
  person can look at it and the monitor starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Final

from monitor import escape
from monitor.files import UnusableFile, read_regular

__all__ = [
    "UnusableFile",
    "move_aside",
    "read_json_bounded",
    "write_json_atomic",
]

log = logging.getLogger(__name__)

_OPEN_NEW: Final = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
)
_OPEN_DIR: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def write_json_atomic(path: Path, data: Any, *, mode: int = 0o600) -> None:
    """Write ``data`` as JSON to ``path``: all of it or nothing, never through a link.

    Raises OSError (the directory is not writable, the disk is full) or
    ValueError (``data`` holds a NaN or an infinity, which JSON cannot say).
    """
    text = json.dumps(data, allow_nan=False, separators=(",", ":")).encode("utf-8")
    directory = os.open(path.parent if str(path.parent) else Path("."), _OPEN_DIR)
    try:
        tmp = f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, _OPEN_NEW, mode, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=directory)
            raise
        with contextlib.suppress(OSError):  # not every file system syncs a directory
            os.fsync(directory)
    finally:
        os.close(directory)


def read_json_bounded(path: Path, max_bytes: int, max_depth: int) -> Any:
    """The JSON value in ``path``; FileNotFoundError when there is none.

    Raises ``UnusableFile`` for anything but a regular file of at most
    ``max_bytes`` holding JSON nested at most ``max_depth`` deep, and
    OSError when it cannot be read.
    """
    data = read_regular(path, max_bytes, follow=False)
    return parse_json_bounded(data, max_depth)


def parse_json_bounded(data: bytes, max_depth: int) -> Any:
    """JSON from ``data``, refused (``UnusableFile``) when nested deeper than ``max_depth``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnusableFile(f"it is not UTF-8 text (at byte {exc.start})") from None
    depth = _depth(text, max_depth)
    if depth > max_depth:
        raise UnusableFile(f"it is nested more than {max_depth} levels deep")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise UnusableFile(f"it is not valid JSON ({escape.plain(exc, 120)})") from None


# Strings (with their escapes) and brackets: the nesting is counted outside strings.
_TOKENS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _depth(text: str, limit: int) -> int:
    """How deep brackets nest in ``text`` (stops counting past ``limit``)."""
    if "[" not in text and "{" not in text:
        return 0
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def move_aside(path: Path, why: str, what: str = "state file") -> Path | None:
    """Rename an unusable ``path`` to ``<name>.corrupt-<UTC time>`` and log it.

    Returns the new path, or None when it could not be moved (also logged).
    A symbolic link is moved itself, never what it points to.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for attempt in range(100):
        suffix = f".corrupt-{stamp}" + (f"-{attempt}" if attempt else "")
        aside = path.with_name(path.name + suffix)
        if os.path.lexists(aside):
            continue
        try:
            os.rename(path, aside)
        except OSError as exc:
            log.error(
                "%s %s cannot be used (%s) nor moved aside (%s); starting afresh",
                what,
                path,
                why,
                exc.strerror or exc,
            )
            return None
        log.warning(
            "%s %s cannot be used (%s); moved aside to %s; starting afresh",
            what,
            path,
            why,
            aside.name,
        )
        return aside
    log.error("%s %s cannot be used (%s); starting afresh", what, path, why)
    return None
