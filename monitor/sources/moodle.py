"""Moodle as a source of servers and of a pool: mod_jitsi's rows become monitored servers.

Each ``jitsi_servers`` row (monitor.moodle.servers) becomes a server named by its
slug, labelled ``moodle_server_id``, at the ``url`` template's URL, of the kind
its type gives, with ``defaults:`` applied like any other server; a row with
credentials gets a token key of style ``mod_jitsi`` (tokens minted as Moodle's
users carry them). A type 3 row that is not provisioned is listed as such and
not probed: mod_jitsi opens no session on it, so it is not down either.

Every server of the site is a member of the pool ``moodle.pool`` (a pool of that
name in ``pools:`` gives its settings, else the defaults). ``MoodleSite`` reads
the site every ``interval``; a failed read keeps the last good rows (the
``SiteReader``) and shows in ``MoodleStatus``. After every read its listeners
hear of it, once its servers are adopted (serve follows ``mod_jitsi/server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from monitor import escape
from monitor.checks.mod_jitsi_tokens import HS_KID, LIFETIME
from monitor.config import MonitorConfig
from monitor.config.moodle import MoodleConfig
from monitor.config.schema import PoolConfig, ServerConfig
from monitor.domain import TokenKey
from monitor.moodle.database import SiteRead, SiteReader, read_password
from monitor.moodle.servers import JaasKey, MoodleServer, SharedSecret
from monitor.moodle.status import MAX_PROBLEMS, MoodleStatus
from monitor.sources.merge import Given, merge

__all__ = ["SOURCE", "MoodleSite", "moodle_given", "read_once", "with_moodle_pool"]

log = logging.getLogger("monitor.moodle")

SOURCE = "moodle"


def _token_key(server: MoodleServer) -> TokenKey | None:
    creds = server.credentials
    if isinstance(creds, SharedSecret):
        return TokenKey(
            algorithm="HS256",
            key=creds.secret,
            key_id=HS_KID,
            issuer=creds.app_id,
            subject=server.domain,  # build_token's sub: the domain as typed in Moodle
            lifetime=float(LIFETIME),
            style="mod_jitsi",
        )
    if isinstance(creds, JaasKey):
        return TokenKey(
            algorithm="RS256",
            key=creds.private_key,
            key_id=creds.api_key_id,
            issuer="chat",
            subject=creds.app_id,
            lifetime=float(LIFETIME),
            jaas=True,
            style="mod_jitsi",
        )
    return None


def moodle_given(site: SiteRead | None) -> Given:
    """The servers a read gives (those not provisioned left out), with their token keys."""
    if site is None:
        return Given(SOURCE)
    servers: list[ServerConfig] = []
    keys: dict[str, TokenKey] = {}
    for row in site.servers:
        if row.not_provisioned is not None:
            continue
        try:
            server = ServerConfig(
                name=row.slug,
                url=row.url,
                kind=row.kind,
                labels={"moodle_server_id": str(row.id)},
            )
        except ValueError as exc:  # a URL the template makes that serve cannot probe
            log.warning("moodle: row %d left out: %s", row.id, escape.plain(exc, 300))
            continue
        servers.append(server)
        key = _token_key(row)
        if key is not None:
            keys[row.slug] = key
    return Given(SOURCE, tuple(servers), keys)


def with_moodle_pool(config: MonitorConfig, pool: str, members: list[str]) -> MonitorConfig:
    """``config`` with the site's servers in the pool ``pool`` (made when not in ``pools:``)."""
    known = {s.name for s in config.servers}
    members = [m for m in members if m in known]
    if not members:
        return config
    pools = list(config.pools)
    for index, existing in enumerate(pools):
        if existing.name == pool:
            names = list(dict.fromkeys([*existing.servers, *members]))
            pools[index] = existing.model_copy(update={"servers": names})
            break
    else:
        pools.append(PoolConfig(name=pool, servers=members))
    merged = config.model_copy(update={"pools": pools})
    merged._token_keys = config._token_keys
    merged._targets = None  # not the copied cache: see monitor.sources.merge
    return merged


async def read_once(config: MonitorConfig) -> tuple[MonitorConfig, MoodleSite | None]:
    """``check``'s view: the config with the site's servers and pool, read once."""
    if config.moodle is None:
        return config, None
    site = MoodleSite(config.moodle, config)
    await site.read()
    merged, _ = merge(config, [site.given])
    return with_moodle_pool(merged, site.spec.pool, site.members()), site


class MoodleSite:
    """The site of a config's ``moodle:`` block: read now and every ``interval``."""

    def __init__(self, spec: MoodleConfig, config: MonitorConfig) -> None:
        self.spec = spec
        base = config._base_dir
        file = spec.password_file
        self.reader = SiteReader(
            spec.dsn(),
            lambda: read_password(None if file is None else base / file),
            prefix=spec.prefix,
            url_template=spec.url,
        )
        self.status = MoodleStatus(spec.dsn().shown, spec.pool, spec.switch)
        self.given = Given(SOURCE)
        # Called after every read, good or not (serve follows mod_jitsi/server).
        self.listeners: list[Callable[[SiteRead | None], None]] = []
        self._task: asyncio.Task[None] | None = None

    def carry(self, old: MoodleSite) -> None:
        """Keep what ``old`` (the block before a reload changed it) read, until this one reads."""
        self.given = old.given
        self.reader.last_good = old.reader.last_good
        status, was = self.status, old.status
        status.active_id, status.active_server = was.active_id, was.active_server
        status.servers, status.not_provisioned = was.servers, was.not_provisioned
        status.switches, status.last_switch = was.switches, was.last_switch

    @property
    def site(self) -> SiteRead | None:
        return self.reader.last_good

    def members(self) -> list[str]:
        return [s.name for s in self.given.servers]

    def server_of(self, row_id: int | None) -> str | None:
        """The monitored server of a row id; None when no watched server is that row."""
        wanted = str(row_id)
        for server in self.given.servers:
            if server.labels.get("moodle_server_id") == wanted:
                return server.name
        return None

    def row_of(self, server: str | None) -> int | None:
        for candidate in self.given.servers:
            if candidate.name == server:
                return int(candidate.labels["moodle_server_id"])
        return None

    async def read(self) -> SiteRead | None:
        """Read the site now; the last good read."""
        status = self.status
        site = await self.reader.read()
        status.last_attempt = self.reader.last_attempt
        status.reads_total += 1
        error = self.reader.last_error
        if error is None:
            status.ok, status.error, status.error_reason = True, "", ""
            status.last_success = time.time()
        else:
            status.ok = False
            status.error_reason = error.reason
            status.error = escape.plain(error.detail, 500)
            status.read_errors_total += 1
        if site is not None:
            self.given = moodle_given(site)
            status.active_id = site.active_id
            status.active_server = self.server_of(site.active_id)
            status.servers = len(self.given.servers)
            status.not_provisioned = [
                {"id": s.id, "server": s.slug, "status": s.not_provisioned}
                for s in site.servers
                if s.not_provisioned is not None
            ]
            status.problems_total = len(site.problems)
            status.problems = [escape.plain(p.detail, 300) for p in site.problems[:MAX_PROBLEMS]]
        return site

    def start(self, changed: Callable[[], None]) -> None:
        """Read every ``interval``; ``changed`` (the servers adopted), then the listeners."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop(changed))

    async def _loop(self, changed: Callable[[], None]) -> None:
        if self.reader.last_attempt is not None:  # serve's first read was at start
            await asyncio.sleep(self.spec.interval)
        while True:
            try:
                site = await self.read()
                changed()
                self.tell(site)
            except Exception:  # our own bug: say so, keep the last servers
                log.exception("moodle: reading the site failed")
            await asyncio.sleep(self.spec.interval)

    def tell(self, site: SiteRead | None) -> None:
        """Hand a read to the listeners."""
        for listener in self.listeners:
            try:
                listener(site)
            except Exception:  # our own bug: the other listeners still hear of it
                log.exception("moodle: a listener of the read failed")

    def stop(self) -> None:
        """Stop reading (a reload replaced the block); the task ends on its own."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
