"""Run one server's ladder under one deadline and turn it into a ServerReport.

``run_ladder`` runs the families of ``monitor.checks.FAMILIES`` in order,
and reads top to bottom: each family says which of its checks a server
runs, whether an earlier failure stops it (its checks are then reported as
skipped, with why), and runs its probe. ``Runner`` only holds what ladders
share: the one resolver, TLS contexts, the BOSH session, the carried
verdicts and the concurrency bound. The checks themselves are declared by
their families (``monitor.checks.<family>``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import Any

from monitor import __version__, escape
from monitor.checks import FAMILIES, ladder_of, make_report
from monitor.checks.carry import Memory, Policy
from monitor.checks.family import Family
from monitor.checks.run import LadderRun
from monitor.checks.signalling.xmpp import no_redirects
from monitor.checks.web.configjs import for_fleet as configjs_reader
from monitor.config import MonitorConfig
from monitor.domain import Target
from monitor.ladder import Check
from monitor.model import CheckResult, Reason, ServerReport, skipped
from monitor.net import Resolver, make_ssl_context
from monitor.net.aio import client_session

__all__ = ["Runner", "run_ladder", "user_agent"]

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
        # The one resolver of every probe: HTTP, XMPP (WebSocket and BOSH) and media.
        self.resolver = Resolver(config.dns.nameservers or ())
        self._ssl: dict[tuple[bool, Path | None], ssl.SSLContext] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        # The families it runs, in ladder order, and their table.
        self.families = families
        self.ladder = ladder_of(families)
        # Each family's carried verdicts (monitor.checks.carry), by family name.
        self._memories: dict[str, Memory[Any]] = {}
        # BOSH for the signalling ladder; each request is its own connection.
        self.session = client_session(self.resolver, [no_redirects()])

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


async def run_ladder(runner: Runner, target: Target) -> ServerReport:
    """Run ``target``'s ladder, family by family, under one deadline; never raises
    except on cancellation."""
    started_at = time.time()
    t0 = time.monotonic()
    run = LadderRun(runner, target, asyncio.get_running_loop().time() + target.timeout)
    wanted_of = {
        family.name: tuple(c for c in family.wanted(target) if run.in_groups(c))
        for family in runner.families
    }
    for family in runner.families:
        # What a family hands the earlier ones' probes (e.g. the login's token).
        if wanted_of[family.name] and family.prepare is not None:
            family.prepare(run)
    for family in runner.families:
        wanted = wanted_of[family.name]
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
