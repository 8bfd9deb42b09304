"""A ``files:`` source: servers.d/*.yaml, each file a list of servers, watched for changes.

Each file is read with the config's own loader (``parse_config``: the same
schema, limits and messages with file and line), as if its list stood under
``servers:`` of a config with this config's ``defaults``. A file may also
be a mapping with ``servers:`` alone. Relative paths in a file (``ca_file``,
key files) are relative to the file.

Files are looked at every ``refresh``: a new, changed or removed file (by
its modification time, size and inode) is read again; an unchanged one is
not. A file that cannot be read or is not valid keeps the servers it gave
before, and the source reports the error until the file is mended.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from monitor.config import ConfigError, MonitorConfig, Problem, parse_config
from monitor.config.schema import ServerConfig, TlsSettings
from monitor.config.server_sources import ServerSourceConfig
from monitor.domain import TokenKey
from monitor.sources.fetch import SourceError, read_bounded
from monitor.sources.merge import Given

__all__ = ["MAX_FILES", "FileSource", "FileState", "parse_servers_file"]

# Most files one glob may match.
MAX_FILES = 1000

Signature = tuple[int, int, int]


@dataclass(frozen=True)
class FileState:
    signature: Signature
    servers: tuple[ServerConfig, ...] = ()
    token_keys: dict[str, TokenKey] = field(default_factory=dict)
    error: str = ""  # the last read failed; ``servers`` are from the read before


def _wrap(text: str, base: MonitorConfig) -> tuple[str, int]:
    """The file as a config: its list under ``servers:``, with the config's
    defaults (a server's timeout is checked against their interval). Returns
    the text and how many lines were put before the file's."""
    d = base.defaults
    head = f"defaults: {{interval: {d.interval!r}, timeout: {d.timeout!r}}}\n"
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    if first.startswith("servers:"):
        return head + text, 1
    # Document markers and directives would end the mapping: keep them as comments.
    body = "\n".join(
        "#" + ln if ln.startswith(("---", "...", "%")) else ("  " + ln if ln.strip() else ln)
        for ln in lines
    )
    return head + "servers:\n" + body + "\n", 2


def _absolute(server: ServerConfig, directory: Path) -> ServerConfig:
    """``tls.ca_file`` made absolute: relative to the file, not the config."""
    tls = server.tls
    if tls is None or tls.ca_file is None or tls.ca_file.is_absolute():
        return server
    fixed = TlsSettings(verify=tls.verify, ca_file=directory / tls.ca_file)
    return server.model_copy(update={"tls": fixed})


def parse_servers_file(
    path: Path, base: MonitorConfig, max_bytes: int
) -> tuple[tuple[ServerConfig, ...], dict[str, TokenKey]]:
    """The servers of one file; SourceError says what is wrong, with lines."""
    data = read_bounded(path, max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(f"{path} is not UTF-8 text") from None
    if not any(ln.strip() and not ln.lstrip().startswith("#") for ln in text.splitlines()):
        return (), {}
    wrapped, offset = _wrap(text, base)
    directory = path.parent.resolve()
    try:
        cfg = parse_config(wrapped, str(path), directory)
    except ConfigError as exc:
        problems = [
            Problem(
                p.file, p.line - offset if p.line and p.line > offset else None, p.field, p.message
            )
            for p in exc.problems
        ]
        raise SourceError("; ".join(str(p) for p in problems[:5])) from None
    if cfg.model_fields_set - {"servers", "defaults"}:
        others = ", ".join(sorted(cfg.model_fields_set - {"servers", "defaults"}))
        raise SourceError(f"{path}: a servers file holds servers only, not {others}")
    return tuple(_absolute(s, directory) for s in cfg.servers), dict(cfg._token_keys)


class FileSource:
    """The files of one ``files:`` glob, and the servers each gave last."""

    def __init__(self, spec: ServerSourceConfig, base_dir: Path) -> None:
        assert spec.files is not None
        self.spec = spec
        self.pattern = str(base_dir / spec.files)
        self.files: dict[Path, FileState] = {}

    def scan(self, base: MonitorConfig) -> tuple[dict[Path, FileState], str]:
        """The files as they are now (changed ones read again) and the errors
        of this look; runs in a worker thread, changes nothing."""
        found = sorted(glob.glob(self.pattern))
        errors: list[str] = []
        if len(found) > MAX_FILES:
            errors.append(f"{len(found)} files match; only the first {MAX_FILES} are read")
            found = found[:MAX_FILES]
        now: dict[Path, FileState] = {}
        for name in found:
            path = Path(name)
            try:
                info = os.stat(path)
            except OSError:
                continue  # gone between the glob and now
            signature = (info.st_mtime_ns, info.st_size, info.st_ino)
            old = self.files.get(path)
            if old is not None and old.signature == signature:
                now[path] = old
            else:
                try:
                    servers, keys = parse_servers_file(path, base, self.spec.max_bytes)
                    now[path] = FileState(signature, servers, keys)
                except SourceError as exc:
                    keep = old or FileState(signature)
                    now[path] = FileState(signature, keep.servers, keep.token_keys, str(exc))
            if now[path].error:
                errors.append(now[path].error)
        return now, "; ".join(errors)

    def given(self) -> Given:
        """The servers of every file, in file order (a name taken twice is left
        out when merged, and reported)."""
        servers: list[ServerConfig] = []
        keys: dict[str, TokenKey] = {}
        for item in self.files.values():
            servers += item.servers
            keys.update(item.token_keys)
        return Given(self.spec.name, tuple(servers), keys)
