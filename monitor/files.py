"""Reading a file that a person or another program put there: one bounded reader.

Configs, ``servers.d`` files, JWT secret and key files (and password files
as they come) and the state file are all read by ``read_regular``:

- opened with ``O_NONBLOCK``, then ``fstat``: only a regular file is read.
  A FIFO would block ``open`` and ``read`` for ever, a device would never
  end; both are refused at once, without a single read;
- at most ``max_bytes``, checked on the size and again while reading (a file
  that grows meanwhile is refused, never read without end);
- ``follow=False`` refuses a symbolic link (``O_NOFOLLOW``): the state file,
  which the monitor writes itself. Configs and secrets may be links (a
  Kubernetes ConfigMap or Secret mounts its files through links).

``read_secret`` also warns, once per file and mode, when a secret file is
readable by its group or by others (as ssh does for a private key), naming
the file and its mode: the expected modes are 0600 or 0400 (0640 with a
group that only the monitor's user is in draws the warning too: say so by
tightening the mode).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Final

__all__ = ["SECRET_MAX_BYTES", "UnusableFile", "kind_of", "read_regular", "read_secret"]

log = logging.getLogger("monitor.files")

# A PEM RSA 8192 key is some 6.5 KB; a secret or a password is far smaller.
SECRET_MAX_BYTES: Final = 64 * 1024

_OPEN: Final = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)


class UnusableFile(ValueError):
    """The file is there but must not be used: what is wrong, in a few words."""


def kind_of(mode: int) -> str:
    """What a file that is not regular is, for a message."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: Path, max_bytes: int, *, follow: bool = True) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes``.

    Raises FileNotFoundError when there is none, ``UnusableFile`` for
    anything but a regular file of at most ``max_bytes`` (a symbolic link too,
    unless ``follow``), and OSError when it cannot be read. Never blocks on
    a FIFO or a device.
    """
    data, _ = _read(path, max_bytes, follow)
    return data


def _read(path: Path, max_bytes: int, follow: bool) -> tuple[bytes, int]:
    """The bytes and the mode of the file (from the same open: no race between them)."""
    try:
        fd = os.open(path, _OPEN if follow else _OPEN | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:  # O_NOFOLLOW met a symbolic link
            raise UnusableFile("it is a symbolic link, not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnusableFile(f"it is not a regular file ({kind_of(info.st_mode)})")
        if info.st_size > max_bytes:
            raise UnusableFile(f"it is larger than {max_bytes} bytes ({info.st_size})")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise UnusableFile(f"it grew past {max_bytes} bytes while being read")
    finally:
        os.close(fd)
    return b"".join(chunks), stat.S_IMODE(info.st_mode)


# (path, mode) already warned about: a reload every minute must not repeat it.
_WARNED: set[tuple[str, int]] = set()
_WARNED_LOCK = threading.Lock()


def read_secret(path: Path, max_bytes: int = SECRET_MAX_BYTES) -> bytes:
    """A secret, key or password file, as ``read_regular`` reads it; logs a
    warning naming the file and its mode when group or others may read it."""
    data, mode = _read(path, max_bytes, follow=True)
    if mode & 0o077:
        key = (str(path), mode)
        with _WARNED_LOCK:
            new = key not in _WARNED
            _WARNED.add(key)
        if new:
            # Named only when it looks like a path: a secret pasted in its place is not echoed.
            shown = str(path) if len(path.name) <= 64 else "(a long name, not shown)"
            log.warning(
                "secret file %s has mode %04o: %s may read it; it should be 0600 or 0400 "
                "(chmod 600 %s)",
                shown,
                mode,
                _who(mode),
                shown,
            )
    return data


def _who(mode: int) -> str:
    group, others = bool(mode & 0o070), bool(mode & 0o007)
    return "its group and others" if group and others else "its group" if group else "others"
