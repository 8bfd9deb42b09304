"""Run one server's ladder under one deadline and turn it into a ServerReport.

``run_ladder`` runs the families of ``monitor.checks.FAMILIES`` in order,
and reads top to bottom: each family says which of its checks a server
runs, whether an earlier failure stops it (its checks are then reported as
skipped, with why), and runs its probe. ``Runner`` only holds what ladders
share: a DNS resolver, TLS contexts, the WebSocket session, the carried
verdicts and the concurrency bound. The checks themselves are declared by
their families (``monitor.checks.<family>``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiodns
import aiohttp

from monitor import __version__, escape
from monitor.checks import FAMILIES, ladder_of, make_report
from monitor.checks.carry import Memory, Policy
from monitor.checks.family import Family
from monitor.checks.jwt.family import MATRIX_CARRY
from monitor.checks.media import Discovery
from monitor.checks.media.family import MEDIA_CARRY
from monitor.checks.signalling.xmpp import XmppSettings, no_redirects, timed_connector
from monitor.checks.tokens import mint, origin_of_url
from monitor.checks.web.configjs import for_fleet as configjs_reader
from monitor.checks.web.probe import WebResult
from monitor.config import MonitorConfig
from monitor.domain import Target
from monitor.ladder import Check
from monitor.model import CheckResult, ConfigFacts, FamilyResult, R, Reason, ServerReport, skipped
from monitor.probes.http_client import make_ssl_context

__all__ = ["LadderRun", "Runner", "run_ladder", "user_agent"]

log = logging.getLogger(__name__)


def user_agent(contact: str | None) -> str:
    """The User-Agent every request carries, so operators can tell who probes them."""
    return (
        f"jitsi-monitor/{__version__} (+{contact})" if contact else f"jitsi-monitor/{__version__}"
    )


class Runner:
    """Runs ladders; shares a DNS resolver, TLS contexts, a concurrency bound,
    and the last token matrix of each server (``matrices``).

    Create it inside a running event loop and ``close()`` it when done.
    """

    def __init__(self, config: MonitorConfig, families: tuple[Family, ...] = FAMILIES) -> None:
        self.user_agent = user_agent(config.contact)
        # config.js's engine and cache, with the config's limits (its own, not the process's).
        self.configjs = configjs_reader(config.configjs.limits(), len(config.servers))
        nameservers = config.dns.nameservers or None
        self.resolver = aiodns.DNSResolver(nameservers=nameservers, timeout=5.0, tries=2)
        self._ssl: dict[tuple[bool, Path | None], ssl.SSLContext] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        # The families it runs, in ladder order, and their table.
        self.families = families
        self.ladder = ladder_of(families)
        # Each family's carried verdicts (monitor.checks.carry), by family name.
        self._memories: dict[str, Memory[Any]] = {}
        # WebSockets for the signalling ladder; each is its own connection.
        self.session = aiohttp.ClientSession(
            connector=timed_connector(
                resolver=aiohttp.AsyncResolver(nameservers=nameservers, timeout=5.0, tries=2),
                limit=0,
                force_close=True,
            ),
            timeout=aiohttp.ClientTimeout(total=None),
            trace_configs=[no_redirects()],
        )

    async def close(self) -> None:
        await self.session.close()
        await self.resolver.close()
        self.configjs.close()

    def ssl_context(self, target: Target) -> ssl.SSLContext:
        key = (target.tls_verify, target.ca_file)
        ctx = self._ssl.get(key)
        if ctx is None:
            ctx = self._ssl[key] = make_ssl_context(target.tls_verify, target.ca_file)
        return ctx

    def memory(self, family: str, policy: Policy) -> Memory[Any]:
        """The carried verdicts of ``family`` (made on first use, kept with the runner)."""
        memory = self._memories.get(family)
        if memory is None:
            memory = self._memories[family] = Memory(policy)
        return memory

    def slot(self) -> asyncio.Semaphore:
        """Hold this while a ladder runs: it bounds how many run at once."""
        return self._slots

    async def run(self, target: Target) -> ServerReport:
        """Probe ``target`` once, waiting for a free slot first."""
        async with self._slots:
            return await self.run_now(target)

    async def run_now(self, target: Target) -> ServerReport:
        """Probe ``target`` once; never raises except on cancellation."""
        return await run_ladder(self, target)


@dataclass
class LadderRun:
    """One ladder in progress: what its families share, and what they found so far."""

    runner: Runner
    target: Target
    deadline: float  # on the event loop's clock
    checks: list[CheckResult] = field(default_factory=list)
    # What each family found besides its checks, by family name (the report's ``results``).
    results: dict[str, FamilyResult] = field(default_factory=dict)

    def found(self, kind: type[R]) -> R | None:
        """What the family of ``kind`` found so far (None: it has not run)."""
        found = self.results.get(kind.family)
        return found if isinstance(found, kind) else None

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        return self.runner.ssl_context(self.target)

    @functools.cached_property
    def origin(self) -> str:
        parts = urlsplit(self.target.url)
        return f"{parts.scheme}://{parts.netloc}"

    # -- what the families hand one another ------------------------------------
    # The signalling login is the jwt family's valid-token case and the media
    # family's discovery; the settings below wire them into it.

    @functools.cached_property
    def xmpp_settings(self) -> XmppSettings:
        """The signalling settings of the target (the token matrix varies them per case)."""
        target, key = self.target, self.target.token_key
        return XmppSettings(
            focus=target.focus,
            join=target.join,
            user_agent=self.runner.user_agent,
            ssl_context=self.ssl_context,
            token_for=None if key is None else functools.partial(mint, key),
            # The main ladder is the moderator: false case on a matrix round.
            settle=key.settle if key is not None and self.matrix_due else 0.0,
            same_host=target.confined,
            token_origins=self.token_origins,
            after_login=self.discovery,
        )

    @functools.cached_property
    def media_due(self) -> bool:
        """Whether this round probes STUN and TURN (else it carries their last verdicts)."""
        if not self.in_groups(Check.TURN):
            return False
        return self.runner.memory("media", MEDIA_CARRY).due(self.target, self.config, time.time())

    @functools.cached_property
    def discovery(self) -> Discovery | None:
        """The extdisco query the signalling family makes after its login, when media is due."""
        media = self.target.media
        if media is None or not self.media_due:
            return None
        return Discovery(media.max_services, self.deadline)

    @functools.cached_property
    def matrix_due(self) -> bool:
        """Whether this round runs the refusal cases and the moderator pair."""
        if not self.in_groups(Check.JWT_ENFORCED):
            return False
        return self.runner.memory("jwt", MATRIX_CARRY).due(self.target, self.config)

    @property
    def token_origins(self) -> tuple[str, ...]:
        """Where tokens may go besides the server's origin: the origin its page
        redirected to, and the signalling origins of its jwt block."""
        key = self.target.token_key
        if key is None:
            return ()
        web = self.found(WebResult)
        page = origin_of_url(web.page_url) if web is not None else None
        return (*((page,) if page else ()), *key.signalling_origins)

    @property
    def config(self) -> ConfigFacts | None:
        """What config.js said, once the web family has read it."""
        web = self.found(WebResult)
        return web.config if web is not None else None

    def in_groups(self, check: Check) -> bool:
        """Whether ``check`` is in the groups the target runs (``/probe``'s ``checks=``)."""
        groups = self.target.groups
        return groups is None or self.runner.ladder.spec(check).group in groups

    def result(self, check: Check) -> CheckResult | None:
        return next((r for r in self.checks if r.check is check), None)

    def first_failure(self) -> str:
        """The check that failed first (what later skips name as their cause)."""
        failed = next(
            (r for r in self.checks if not r.success and r.reason is not Reason.SKIPPED), None
        )
        return failed.check.value if failed else "an earlier check"


async def run_ladder(runner: Runner, target: Target) -> ServerReport:
    """Run ``target``'s ladder, family by family, under one deadline; never raises
    except on cancellation."""
    started_at = time.time()
    t0 = time.monotonic()
    run = LadderRun(runner, target, asyncio.get_running_loop().time() + target.timeout)
    for family in runner.families:
        wanted = tuple(c for c in family.wanted(target) if run.in_groups(c))
        if not wanted:
            continue
        cause = family.blocked(run)
        if cause is not None:
            run.checks += skipped(wanted, cause)
            continue
        try:
            results = await family.run(run, wanted)
        except (OSError, ssl.SSLError) as exc:
            # The server is not to blame: e.g. an unreadable ca_file.
            log.error("server %s: cannot set up the probe: %s", target.name, escape.plain(exc))
            results = _crashed(wanted, f"cannot set up the probe: {escape.plain(exc, 300)}")
        except Exception:  # our own bug: keep what earlier families found
            log.exception("server %s: the %s family crashed", target.name, family.name)
            results = _crashed(wanted, "the probe crashed; see the monitor's log")
        run.checks += (r for r in results if r.check in wanted)
    return make_report(
        runner.ladder,
        server=target.name,
        started_at=started_at,
        duration=time.monotonic() - t0,
        checks=run.checks,
        results=run.results,
    )


def _crashed(wanted: tuple[Check, ...], detail: str) -> tuple[CheckResult, ...]:
    first, *rest = wanted
    return (CheckResult(first, Reason.INTERNAL_ERROR, detail), *skipped(rest, first.value))
