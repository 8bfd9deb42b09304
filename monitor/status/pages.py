"""``Pages``: builds each page's view from ``State`` (now) and ``History``
(before) and renders it. The HTTP layer calls these; they never touch HTTP.

History is read in the history's reader thread (``History.read``), only
for the servers of the page shown; without history the pages still show
the state now.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from monitor.beacon import Beacons
from monitor.beacon.panel import render_users
from monitor.checks import FAMILIES
from monitor.config.pages import StatusSettings
from monitor.domain import Target
from monitor.history import History, ServerSummary
from monitor.history import queries as q
from monitor.model import ServerReport
from monitor.state import State
from monitor.status.badges import pool_badge, server_badge
from monitor.status.index import IndexView, PoolLine, render_index
from monitor.status.layout import RANGES
from monitor.status.model import (
    Filters,
    filter_servers,
    label_choices,
    row,
    verdict_of,
    visible,
)
from monitor.status.pool_page import CandidateLine, PoolView, render_pool
from monitor.status.server_page import ServerView, render_server

__all__ = ["Pages"]

log = logging.getLogger("monitor.status")
T = TypeVar("T")

PRIVATE = "(private)"


class Pages:
    """The status pages of one monitor."""

    def __init__(
        self, state: State, settings: StatusSettings, history: History | None = None
    ) -> None:
        self.state = state
        self.settings = settings
        self.history = history
        # Each server's verdict with the report it was worked out from: a
        # report's verdict is worked out once, not at every request.
        self._verdict_of: dict[str, tuple[ServerReport | None, str]] = {}
        self._label_cache: tuple[dict[str, Target], list[str]] | None = None
        self._visible_cache: tuple[tuple[dict[str, Target], StatusSettings], list[str]] | None = (
            None
        )

    async def _read(self, history: History, query: Callable[[Any], T], default: T) -> T:
        """A read of the history; a failing one is logged and the page shown without it."""
        try:
            return await history.read(query)
        except sqlite3.Error as exc:
            log.error("history: cannot read %s: %s", history.path, exc)
            return default

    def _hidden(self, name: str) -> bool:
        return self.settings.public and name in self.settings.private

    def _visible(self) -> list[str]:
        """Names the pages may show, sorted again only when servers or settings change."""
        key = (self.state.targets, self.settings)
        if self._visible_cache is None or any(
            a is not b for a, b in zip(self._visible_cache[0], key, strict=True)
        ):
            self._visible_cache = (key, visible(self.state, self.settings))
        return self._visible_cache[1]

    def _labels(self, names: list[str]) -> list[str]:
        """The label filter's choices, worked out again only when the servers change."""
        if self._label_cache is None or self._label_cache[0] is not self.state.targets:
            self._label_cache = (self.state.targets, label_choices(self.state, names))
        return self._label_cache[1]

    def _verdicts(self, names: list[str]) -> dict[str, str]:
        reports, cache = self.state.reports, self._verdict_of
        out = {}
        for name in names:
            report = reports.get(name)
            known = cache.get(name)
            if known is None or known[0] is not report:
                known = cache[name] = (report, verdict_of(report))
            out[name] = known[1]
        if len(cache) > 2 * len(self.state.targets) + 100:  # servers removed meanwhile
            for gone in set(cache) - set(self.state.targets):
                del cache[gone]
        return out

    @property
    def _history(self) -> History | None:
        return self.history if self.history is not None and self.history.on else None

    def _shown(self, server: str | None) -> str | None:
        """A server's name as a page may show it (private ones hidden in the public view)."""
        if server is None:
            return None
        if self.settings.public and server in self.settings.private:
            return PRIVATE
        return server

    # -- / ----------------------------------------------------------------------

    async def index(self, query: Mapping[str, str], now: float | None = None) -> str:
        now = time.time() if now is None else now
        state, settings = self.state, self.settings
        filters = Filters.parse(query)
        if settings.public:
            filters = filters.public()
        names = self._visible()
        verdicts = self._verdicts(names)
        matching = filter_servers(state, names, filters, verdicts)
        size = settings.page_size
        pages = max(1, math.ceil(len(matching) / size))
        filters = Filters(filters.pool, filters.label, filters.state, min(filters.page, pages))
        shown = matching[(filters.page - 1) * size : filters.page * size]
        history = self._history
        summaries: Mapping[str, ServerSummary] = {}
        if history is not None and shown:
            summaries = await self._read(history, lambda db: q.summaries(db, shown, now), {})
        counts = Counter(verdicts.values())
        view = IndexView(
            title=settings.title,
            location=state.location,
            rows=[row(state.targets[n], state.reports.get(n), settings.public) for n in shown],
            history=summaries,
            history_on=history is not None,
            pools=[self._pool_line(name) for name in sorted(state.pools)],
            filters=filters,
            matching=len(matching),
            total=len(names),
            pages=pages,
            pool_names=sorted(state.pools),
            label_choices=[] if settings.public else self._labels(names),
            counts=counts,
            refresh=settings.refresh,
            now=now,
        )
        # Rendering a large page takes a while: in a thread, where the
        # interpreter lets the loop run every few milliseconds.
        return await asyncio.to_thread(render_index, view)

    def _pool_line(self, name: str) -> PoolLine:
        pool_state = self.state.pool_states.get(name)
        last = next((d for d in reversed(self.state.decisions) if d.pool == name), None)
        return PoolLine(
            name=name,
            chosen=self._shown(pool_state.current if pool_state else None),
            stale=bool(pool_state and pool_state.stale),
            changed_at=pool_state.changed_at if pool_state and pool_state.changed_at else None,
            reason=None if last is None else last.reason.value,
        )

    # -- /servers/{name} ----------------------------------------------------------

    async def server(
        self, name: str, query: Mapping[str, str], now: float | None = None
    ) -> str | None:
        """The page of a server; None when there is no such server (or it is private)."""
        now = time.time() if now is None else now
        state, settings = self.state, self.settings
        if name not in state.targets or self._hidden(name):
            return None
        target, report = state.targets[name], state.reports.get(name)
        public = settings.public
        span = query.get("range", "24h")
        span = span if span in RANGES else "24h"
        since = now - RANGES[span]
        history = self._history
        data: dict[str, Any] = {}
        if history is not None:

            def read(db: Any) -> dict[str, Any]:
                # A window longer than the history starts where the history does.
                first = q.first_seen(db, name)
                nonlocal since
                since = max(since, min(first, now - 60)) if first is not None else since
                return {
                    "summary": q.summaries(db, [name], now).get(name),
                    "spans": q.check_spans(db, name, since, now),
                    "latency": q.latency(db, name, since, now),
                    "incidents": q.incidents(db, name, since),
                }

            data = await self._read(history, read, {})
        view = ServerView(
            title=settings.title,
            name=name,
            url=None if public else target.url,
            verdict=verdict_of(report),
            checks_now=[]
            if report is None
            else [
                (r.check.value, r.reason.value, "" if public else r.detail) for r in report.checks
            ],
            range=span,
            since=since,
            now=now,
            summary=data.get("summary"),
            spans=data.get("spans", {}),
            latency=data.get("latency", []),
            incidents=data.get("incidents", []),
            facts=_facts(report, public, now),
            public=public,
            history_on=history is not None,
            refresh=settings.refresh,
        )
        # A long flapping history makes a large page: rendered off the loop, as ``/`` is.
        return await asyncio.to_thread(render_server, view)

    # -- /pools/{name} -----------------------------------------------------------

    async def pool(
        self, name: str, query: Mapping[str, str], now: float | None = None
    ) -> str | None:
        """The page of a pool; None when there is no such pool."""
        now = time.time() if now is None else now
        span = query.get("range", "7d")
        span = span if span in RANGES else "7d"
        state, settings = self.state, self.settings
        if name not in state.pools:
            return None
        pool_state = state.pool_states.get(name)
        since = now - RANGES[span]
        history = self._history
        events: list[q.PoolEvent] = []
        if history is not None:

            def read(db: Any) -> list[q.PoolEvent]:
                nonlocal since
                first = q.pool_first_seen(db, name)
                since = max(since, min(first, now - 60)) if first is not None else since
                return q.pool_events(db, name, since)

            events = await self._read(history, read, events)
        if settings.public:
            events = [
                q.PoolEvent(e.at, self._shown(e.previous), self._shown(e.chosen), e.reason, "")
                for e in events
            ]
        view = PoolView(
            title=settings.title,
            name=name,
            chosen=self._shown(pool_state.current if pool_state else None),
            stale=bool(pool_state and pool_state.stale),
            candidates=[
                CandidateLine(
                    server=self._shown(c.server) or "",
                    eligible=c.eligible,
                    why="" if settings.public else c.why,
                    tier=c.tier + 1,
                    score=c.score,
                )
                for c in state.pool_candidates.get(name, [])
            ],
            events=events,
            range=span,
            since=since,
            now=now,
            public=settings.public,
            history_on=history is not None,
            refresh=settings.refresh,
            users=self._users(name, now),
        )
        return await asyncio.to_thread(render_pool, view)

    def _users(self, name: str, now: float) -> str:
        """The users' view of the pool's members (the private view only)."""
        beacons = self.state.users
        if not isinstance(beacons, Beacons) or self.settings.public:
            return ""
        pool, policy = self.state.pools[name], beacons.policy
        views = [beacons.view(s, now) for s in pool.servers if s in self.state.targets]
        return render_users(views, pool.nearest, policy.min_samples, policy.min_prefixes)

    # -- badges -------------------------------------------------------------------

    async def server_badge(self, name: str, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        if name not in self.state.targets or self._hidden(name):
            return None
        summary = None
        history = self._history
        if history is not None:
            empty: dict[str, ServerSummary] = {}
            found = await self._read(history, lambda db: q.summaries(db, [name], now), empty)
            summary = found.get(name)
        return server_badge(name, verdict_of(self.state.reports.get(name)), summary)

    def pool_badge(self, name: str) -> str | None:
        if name not in self.state.pools:
            return None
        pool_state = self.state.pool_states.get(name)
        chosen = None if pool_state is None or pool_state.stale else pool_state.current
        return pool_badge(name, self._shown(chosen))


def _facts(report: ServerReport | None, public: bool, now: float) -> list[tuple[str, str]]:
    """Each family's facts on a server's page (in the public view: no names, no URLs)."""
    if report is None:
        return [("probed", "not yet")]
    return [
        fact
        for family in FAMILIES
        if family.page_facts is not None
        for fact in family.page_facts(report, public, now)
    ]
