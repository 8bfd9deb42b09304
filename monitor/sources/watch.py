"""The server sources of a running ``serve``: read them, keep their state, apply changes.

``Sources`` runs one task per source of the config's ``server_sources``.
Whenever what the sources give changes, it merges their servers with the
config's own (``monitor.sources.merge``) and hands the merged config to
``apply``, the same step a reload ends with: new servers start probing,
removed ones stop and leave ``/metrics``, pools are judged again.

A source that fails (an unreadable or invalid file, an endpoint that does
not answer or answers nonsense) keeps giving the servers of its last good
read; its ``SourceHealth`` says what went wrong and since when.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from monitor.config import MonitorConfig
from monitor.config.schema import ServerConfig
from monitor.config.server_sources import ServerSourceConfig
from monitor.net import Resolver
from monitor.sources.fetch import SourceError, fetch_url
from monitor.sources.files import FileSource, FileState
from monitor.sources.health import MAX_PROBLEMS, SourceHealth
from monitor.sources.http_sd import parse_sd
from monitor.sources.merge import Given, merge
from monitor.sources.names import clean_text

__all__ = ["Sources"]

log = logging.getLogger(__name__)

# Longest error text kept for /healthz and the log.
_MAX_ERROR = 500


@dataclass
class _Run:
    spec: ServerSourceConfig
    files: FileSource | None
    given: Given
    problems: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Sources:
    """Every source of a config, its last good servers and its state."""

    def __init__(
        self, config: MonitorConfig, *, user_agent: str, apply: Callable[[MonitorConfig], object]
    ) -> None:
        self._base = config
        self._user_agent = user_agent
        self._apply = apply
        self._runs: dict[str, _Run] = {}
        self._started = False
        self._resolver: Resolver | None = None
        self._applied: list[ServerConfig] = list(config.servers)
        # Shared with State (its identity is kept across reloads).
        self.health: dict[str, SourceHealth] = {}
        self._adopt(config)

    # -- the config -------------------------------------------------------------
    def _adopt(self, config: MonitorConfig) -> None:
        """Keep the runs of unchanged sources, start afresh the others; files
        of a new source are read here, so the first fleet has them."""
        self._base = config
        wanted = {s.name: s for s in config.server_sources}
        for name in list(self._runs):
            if name not in wanted or wanted[name] != self._runs[name].spec:
                run = self._runs.pop(name)
                if run.task is not None:
                    run.task.cancel()
        for name in list(self.health):
            if name not in wanted:
                del self.health[name]
        for name, spec in wanted.items():
            if name in self._runs:
                continue
            files = FileSource(spec, config._base_dir) if spec.files is not None else None
            run = self._runs[name] = _Run(spec, files, Given(name))
            self.health[name] = SourceHealth(name, spec.type)
            if files is not None:
                found, error = files.scan(config)
                self._took(run, found, error)
            if self._started:
                run.task = asyncio.ensure_future(self._loop(run))
        # The config's order: an earlier source keeps a name.
        self._runs = {name: self._runs[name] for name in wanted}

    def configure(self, config: MonitorConfig) -> MonitorConfig:
        """A reloaded config: adopt its sources; the merged config to apply."""
        self._adopt(config)
        merged = self.merged()
        self._applied = list(merged.servers)
        return merged

    def merged(self) -> MonitorConfig:
        """The config's servers and every source's, as they are now."""
        merged, left_out = merge(self._base, [run.given for run in self._runs.values()])
        for name, run in self._runs.items():
            status = self.health[name]
            problems = run.problems + left_out.get(name, [])
            status.skipped = len(problems)
            status.problems = problems[:MAX_PROBLEMS]
            status.servers = len(run.given.servers) - len(left_out.get(name, []))
        return merged

    # -- running ----------------------------------------------------------------
    def start(self) -> None:
        """Start reading the sources on their intervals; call inside the loop."""
        self._started = True
        nameservers = self._base.dns.nameservers
        if nameservers and self._resolver is None:
            self._resolver = Resolver(nameservers)
        for run in self._runs.values():
            if run.task is None:
                run.task = asyncio.ensure_future(self._loop(run))

    async def close(self) -> None:
        self._started = False
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._resolver is not None:
            await self._resolver.close()

    async def _loop(self, run: _Run) -> None:
        if run.files is not None:  # read once already, when adopted
            await asyncio.sleep(run.spec.every)
        while True:
            try:
                await self._refresh(run)
            except Exception as exc:  # our own bug: say so, keep the last servers
                log.exception("source %s: cannot be read", run.spec.name)
                self._failed(run, f"internal error: {type(exc).__name__}")
            await asyncio.sleep(run.spec.every)

    async def _refresh(self, run: _Run) -> None:
        spec = run.spec
        self.health[spec.name].last_attempt = time.time()
        if run.files is not None:
            found, error = await asyncio.to_thread(run.files.scan, self._base)
            if spec.name in self._runs and self._runs[spec.name] is run:
                self._took(run, found, error)
                self._changed()
            return
        assert spec.http_sd is not None
        try:
            body = await fetch_url(
                spec.http_sd,
                user_agent=self._user_agent,
                time_limit=spec.timeout,
                max_bytes=spec.max_bytes,
                resolver=self._resolver,
            )
            given, problems = parse_sd(body, spec)
        except SourceError as exc:
            self._failed(run, str(exc))
            return
        self._succeeded(run, given, problems)
        self._changed()

    def _took(self, run: _Run, found: dict[Path, FileState], error: str) -> None:
        """A look at a ``files:`` source: files read again keep their last good
        servers when they fail; the source reports the failure."""
        assert run.files is not None
        run.files.files = found
        given = run.files.given()
        if len(given.servers) > run.spec.max_servers:
            self._failed(run, f"{len(given.servers)} servers, more than max_servers")
            return
        self._succeeded(run, given, [], error)

    def _succeeded(self, run: _Run, given: Given, problems: list[str], error: str = "") -> None:
        status = self.health[run.spec.name]
        before = {s.name for s in run.given.servers}
        run.given, run.problems = given, problems
        now = {s.name for s in given.servers}
        if now != before:
            log.info(
                "source %s: %d server(s) (%d new, %d gone)",
                run.spec.name,
                len(now),
                len(now - before),
                len(before - now),
            )
        for problem in problems[:MAX_PROBLEMS]:
            log.debug("source %s: left out %s", run.spec.name, problem)
        if error:
            self._failed(run, error)
            return
        if status.ok is False:
            log.info("source %s: read again after: %s", run.spec.name, status.error)
        status.ok, status.error = True, ""
        status.last_success = time.time()

    def _failed(self, run: _Run, why: str) -> None:
        status = self.health[run.spec.name]
        why = clean_text(why, _MAX_ERROR)
        if why != status.error:
            log.error(
                "source %s: %s; keeping its %d server(s) of the last good read",
                run.spec.name,
                why,
                len(run.given.servers),
            )
        status.ok, status.error = False, why
        status.errors_total += 1

    def _changed(self) -> None:
        merged = self.merged()
        if list(merged.servers) != self._applied:
            self._apply(merged)
            # Only once applied: a failed apply is tried again at the next read.
            self._applied = list(merged.servers)
