"""Run one server's ladder under one deadline and turn it into a ServerReport."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiodns
import aiohttp

from monitor import __version__
from monitor.config import MonitorConfig, Target
from monitor.model import Check, CheckResult, Reason, ServerReport
from monitor.probes.configjs import configure as configure_configjs
from monitor.probes.http import HttpClient, make_ssl_context, origin_of
from monitor.probes.matrix import probe_matrix, valid_check
from monitor.probes.tokens import TokenKey, mint
from monitor.probes.web import WebResult, probe_web
from monitor.probes.xmpp import (
    XmppResult,
    XmppSettings,
    no_redirects,
    probe_xmpp,
    skipped_checks,
)

__all__ = ["Runner", "user_agent"]

log = logging.getLogger(__name__)


def user_agent(contact: str | None) -> str:
    """The User-Agent every request carries, so operators can tell who probes them."""
    return (
        f"jitsi-monitor/{__version__} (+{contact})" if contact else f"jitsi-monitor/{__version__}"
    )


class Runner:
    """Runs ladders; shares a DNS resolver, TLS contexts and a concurrency bound.

    Create it inside a running event loop and ``close()`` it when done.
    """

    def __init__(self, config: MonitorConfig) -> None:
        self._user_agent = user_agent(config.contact)
        configure_configjs(config.configjs.limits(), len(config.servers))
        nameservers = config.dns.nameservers or None
        self._resolver = aiodns.DNSResolver(nameservers=nameservers, timeout=5.0, tries=2)
        self._ssl: dict[tuple[bool, Path | None], ssl.SSLContext] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        # WebSockets for the signalling ladder; each is its own connection.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                resolver=aiohttp.AsyncResolver(nameservers=nameservers, timeout=5.0, tries=2),
                limit=0,
                force_close=True,
            ),
            timeout=aiohttp.ClientTimeout(total=None),
            trace_configs=[no_redirects()],
        )

    async def close(self) -> None:
        await self._session.close()
        await self._resolver.close()

    def _ssl_context(self, target: Target) -> ssl.SSLContext:
        key = (target.tls_verify, target.ca_file)
        ctx = self._ssl.get(key)
        if ctx is None:
            ctx = self._ssl[key] = make_ssl_context(target.tls_verify, target.ca_file)
        return ctx

    def slot(self) -> asyncio.Semaphore:
        """Hold this while a ladder runs: it bounds how many run at once."""
        return self._slots

    async def run(self, target: Target) -> ServerReport:
        """Probe ``target`` once, waiting for a free slot first."""
        async with self._slots:
            return await self.run_now(target)

    async def run_now(self, target: Target) -> ServerReport:
        """Probe ``target`` once; never raises except on cancellation."""
        started_at = time.time()
        t0 = time.monotonic()
        deadline = asyncio.get_running_loop().time() + target.timeout
        try:
            ssl_context = self._ssl_context(target)
            async with HttpClient(
                resolver=self._resolver,
                ssl_context=ssl_context,
                user_agent=self._user_agent,
                max_body_bytes=target.max_body_bytes,
                max_redirects=target.max_redirects,
                confine_to=origin_of(target.url) if target.confined else None,
            ) as client:
                web = await probe_web(client, target.url, target.kind, deadline)
            jwt_checks: tuple[CheckResult, ...] = ()
            jwt_cases: tuple[tuple[str, bool], ...] = ()
            try:
                xmpp = await self._signalling(target, web, ssl_context, deadline)
                if target.token_key is not None and xmpp.checks:
                    jwt_checks, jwt_cases = await self._matrix(
                        target, target.token_key, web, xmpp, ssl_context, deadline
                    )
            except Exception:  # our own bug: keep what the web part found
                log.exception("server %s: signalling probe crashed", target.name)
                crashed = CheckResult(
                    Check.SIGNALLING, Reason.INTERNAL_ERROR, "the probe crashed; see the log"
                )
                xmpp = XmppResult((crashed,), ())
        except (OSError, ssl.SSLError) as exc:
            # The server is not to blame: e.g. an unreadable ca_file.
            log.error("server %s: cannot set up the probe: %s", target.name, exc)
            return _failed(target, started_at, t0, f"cannot set up the probe: {exc}")
        except Exception:  # our own bug: report it, keep the monitor alive
            log.exception("server %s: probe crashed", target.name)
            return _failed(target, started_at, t0, "the probe crashed; see the monitor's log")
        return ServerReport(
            server=target.name,
            started_at=started_at,
            finished_at=time.time(),
            duration=time.monotonic() - t0,
            checks=web.checks + xmpp.checks + jwt_checks,
            http_phases=web.http_phases,
            http_status=web.http_status,
            cert=web.cert,
            config=web.config,
            embed_limit_seconds=web.embed_limit_seconds,
            connect_rtt=web.connect_rtt,
            xmpp_phases=xmpp.phases,
            ping_rtt=xmpp.ping_rtt,
            role=xmpp.role,
            affiliation=xmpp.affiliation,
            jwt_cases=jwt_cases,
        )

    async def _matrix(
        self,
        target: Target,
        key: TokenKey,
        web: WebResult,
        main: XmppResult,
        ssl_context: ssl.SSLContext,
        deadline: float,
    ) -> tuple[tuple[CheckResult, ...], tuple[tuple[str, bool], ...]]:
        """The token checks; the main ladder was the valid-token case."""
        valid = valid_check(main)
        if not key.matrix or web.config is None:
            known = valid.reason is not Reason.SKIPPED
            return (valid,), ((("valid", valid.success),) if known else ())
        settings = self._xmpp_settings(target, ssl_context)
        result = await probe_matrix(
            self._session, web.config, _origin(target.url), settings, key, main, deadline
        )
        return result.checks, result.cases

    def _xmpp_settings(self, target: Target, ssl_context: ssl.SSLContext) -> XmppSettings:
        """The signalling settings of a target; the token matrix varies them per case."""
        key = target.token_key
        return XmppSettings(
            focus=target.focus,
            join=target.join,
            user_agent=self._user_agent,
            ssl_context=ssl_context,
            token_for=None if key is None else functools.partial(mint, key),
            settle=key.settle if key is not None and key.matrix else 0.0,
            same_host=target.confined,
        )

    async def _signalling(
        self, target: Target, web: WebResult, ssl_context: ssl.SSLContext, deadline: float
    ) -> XmppResult:
        settings = self._xmpp_settings(target, ssl_context)
        if not target.signalling:
            return XmppResult((), ())
        configjs = next((c for c in web.checks if c.check is Check.CONFIGJS), None)
        if web.config is None or configjs is None or not configjs.success:
            return XmppResult(skipped_checks(settings, "configjs"), ())
        return await probe_xmpp(self._session, web.config, _origin(target.url), settings, deadline)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _failed(target: Target, started_at: float, t0: float, detail: str) -> ServerReport:
    checks = [CheckResult(Check.WEB, Reason.INTERNAL_ERROR, detail)]
    checks += [
        CheckResult(c, Reason.SKIPPED, "not tried: web failed")
        for c in (Check.CONFIGJS, Check.EXTERNAL_API, Check.EMBED)
    ]
    return ServerReport(
        server=target.name,
        started_at=started_at,
        finished_at=time.time(),
        duration=time.monotonic() - t0,
        checks=tuple(checks),
    )
