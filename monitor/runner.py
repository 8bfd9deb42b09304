"""Run one server's ladder under one deadline and turn it into a ServerReport.

``run_ladder`` runs the stages of ``STAGES`` in order, and reads top to
bottom: each stage says which of its checks a server runs, whether an
earlier failure stops it (its checks are then reported as skipped, with
why), and runs its probe. ``Runner`` only holds what ladders share: a DNS
resolver, TLS contexts, the WebSocket session and the concurrency bound.
The checks themselves are declared in ``monitor.ladder``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiodns
import aiohttp

from monitor import __version__, escape
from monitor.checks.carry import Carried, MatrixMemory, carry
from monitor.checks.jwt.matrix import probe_matrix, valid_check
from monitor.checks.media import Discovery, MediaMemory, MediaVerdicts, probe_media
from monitor.checks.signalling.xmpp import (
    XmppResult,
    XmppSettings,
    no_redirects,
    probe_xmpp,
    signalling_checks,
    timed_connector,
)
from monitor.checks.tokens import mint, origin_of_url
from monitor.checks.web.configjs import configure as configure_configjs
from monitor.checks.web.probe import WebResult, probe_web
from monitor.config import MonitorConfig, Target
from monitor.ladder import LADDER, Check, CheckSpec, JwtCase
from monitor.model import CheckResult, ConfigFacts, MediaReport, Reason, ServerReport, skipped
from monitor.probes.http_client import HttpClient, make_ssl_context, origin_of

__all__ = ["STAGES", "LadderRun", "Runner", "Stage", "register_stage", "run_ladder", "user_agent"]

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

    def __init__(self, config: MonitorConfig) -> None:
        self.user_agent = user_agent(config.contact)
        configure_configjs(config.configjs.limits(), len(config.servers))
        nameservers = config.dns.nameservers or None
        self.resolver = aiodns.DNSResolver(nameservers=nameservers, timeout=5.0, tries=2)
        self._ssl: dict[tuple[bool, Path | None], ssl.SSLContext] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        # The last token matrix of each server, carried between its runs.
        self.matrices = MatrixMemory()
        # The last media (STUN, TURN) verdicts of each server, carried likewise.
        self.media = MediaMemory()
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

    def ssl_context(self, target: Target) -> ssl.SSLContext:
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
        return await run_ladder(self, target)


@dataclass
class LadderRun:
    """One ladder in progress: what its stages share, and what they found so far."""

    runner: Runner
    target: Target
    deadline: float  # on the event loop's clock
    checks: list[CheckResult] = field(default_factory=list)
    web: WebResult | None = None
    xmpp: XmppResult | None = None
    jwt_cases: tuple[tuple[JwtCase, bool], ...] = ()
    # When the matrix shown ran (Unix time), this round or carried from an earlier one.
    jwt_matrix_at: float | None = None
    media: MediaReport | None = None

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        return self.runner.ssl_context(self.target)

    @functools.cached_property
    def origin(self) -> str:
        parts = urlsplit(self.target.url)
        return f"{parts.scheme}://{parts.netloc}"

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
        if not _in_groups(self.target, Check.TURN):
            return False
        return self.runner.media.due(self.target, self.config, time.time())

    @functools.cached_property
    def discovery(self) -> Discovery | None:
        """The extdisco query the signalling stage makes after its login, when media is due."""
        media = self.target.media
        if media is None or not self.media_due:
            return None
        return Discovery(media.max_services, self.deadline)

    @functools.cached_property
    def matrix_due(self) -> bool:
        """Whether this round runs the refusal cases and the moderator pair."""
        if not _in_groups(self.target, Check.JWT_ENFORCED):
            return False
        return self.runner.matrices.due(self.target, self.config)

    @property
    def token_origins(self) -> tuple[str, ...]:
        """Where tokens may go besides the server's origin: the origin its page
        redirected to, and the signalling origins of its jwt block."""
        key = self.target.token_key
        if key is None:
            return ()
        page = origin_of_url(self.web.page_url) if self.web is not None else None
        return (*((page,) if page else ()), *key.signalling_origins)

    @property
    def config(self) -> ConfigFacts | None:
        """What config.js said, once the web stage has read it."""
        return self.web.config if self.web is not None else None

    def result(self, check: Check) -> CheckResult | None:
        return next((r for r in self.checks if r.check is check), None)

    def first_failure(self) -> str:
        """The check that failed first (what later skips name as their cause)."""
        failed = next(
            (r for r in self.checks if not r.success and r.reason is not Reason.SKIPPED), None
        )
        return failed.check.value if failed else "an earlier check"


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage of the ladder: its checks are the rows of ``LADDER`` with its name."""

    name: str
    # Of the stage's checks, those this server runs (none: the stage is off).
    wanted: Callable[[Target], tuple[Check, ...]]
    # Why the stage cannot run now (a failed check's name), or None to run it.
    blocked: Callable[[LadderRun], str | None]
    # Runs the stage's probe for the wanted checks; returns a result for each.
    run: Callable[[LadderRun, tuple[Check, ...]], Awaitable[tuple[CheckResult, ...]]]


# -- the stages, in ladder order ----------------------------------------------


async def _web(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    target = run.target
    async with HttpClient(
        resolver=run.runner.resolver,
        ssl_context=run.ssl_context,
        user_agent=run.runner.user_agent,
        max_body_bytes=target.max_body_bytes,
        max_redirects=target.max_redirects,
        confine_to=origin_of(target.url) if target.confined else None,
    ) as client:
        run.web = await probe_web(client, target.url, target.kind, run.deadline)
    return run.web.checks


def _signalling_wanted(target: Target) -> tuple[Check, ...]:
    if not target.signalling:
        return ()
    return signalling_checks(XmppSettings(focus=target.focus, join=target.join))


def _needs_config(run: LadderRun) -> str | None:
    configjs = run.result(Check.CONFIGJS)
    if run.config is None or configjs is None or not configjs.success:
        return run.first_failure()
    return None


async def _signalling(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    config = run.config
    assert config is not None
    run.xmpp = await probe_xmpp(
        run.runner.session, config, run.origin, run.xmpp_settings, run.deadline
    )
    return run.xmpp.checks


def _jwt_wanted(target: Target) -> tuple[Check, ...]:
    key = target.token_key
    if key is None or not target.signalling:
        return ()
    return LADDER.checks("jwt") if key.matrix else (Check.JWT_VALID,)


def _needs_signalling(run: LadderRun) -> str | None:
    # A failed login is the valid-token case's own verdict; only a skip stops it.
    login = run.result(Check.SIGNALLING)
    if run.xmpp is None or login is None or login.reason is Reason.SKIPPED:
        return run.first_failure()
    return None


async def _jwt(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    """The token checks; the signalling stage's ladder was the valid-token case.

    The refusal cases and the moderator pair run when due; other rounds
    carry their last verdicts (``monitor.checks.carry``).
    """
    config, target, main = run.config, run.target, run.xmpp
    key = target.token_key
    assert config is not None
    assert key is not None
    assert main is not None
    valid = valid_check(main, target.join)
    known = valid.reason is not Reason.SKIPPED
    run.jwt_cases = ((JwtCase.VALID, valid.success),) if known else ()
    if not {Check.JWT_ENFORCED, Check.MODERATION} & set(wanted):
        return (valid,)
    memory = run.runner.matrices
    if run.matrix_due:
        at = time.time()
        matrix = await probe_matrix(
            run.runner.session, config, run.origin, run.xmpp_settings, key, main, run.deadline
        )
        if matrix.cases or any(c.reason is not Reason.SKIPPED for c in matrix.checks):
            memory.keep(target, config, Carried(at, matrix.checks, matrix.cases))
            run.jwt_cases += matrix.cases
            run.jwt_matrix_at = at
            return (valid, *matrix.checks)
    carried = memory.last(target, config)
    if carried is None:
        cause = "the valid token's login" if run.matrix_due else "the token matrix"
        return (valid, *skipped((Check.JWT_ENFORCED, Check.MODERATION), cause))
    run.jwt_cases += carried.cases
    run.jwt_matrix_at = carried.at
    return (valid, *carry(carried, key.matrix_interval))


def _media_wanted(target: Target) -> tuple[Check, ...]:
    return LADDER.checks("media") if target.media is not None else ()


def _needs_login(run: LadderRun) -> str | None:
    # The services are asked for over the signalling stage's session.
    login = run.result(Check.SIGNALLING)
    if login is None or not login.success:
        return run.first_failure()
    return None


async def _media(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    """STUN and TURN, when due; other rounds carry their last verdicts."""
    config, target, media = run.config, run.target, run.target.media
    assert config is not None
    assert media is not None
    memory = run.runner.media
    if run.media_due:
        outcome = await probe_media(
            run.discovery,
            config.stun_servers,
            media,
            run.runner.resolver,
            run.ssl_context,
            run.deadline,
        )
        memory.keep(target, config, MediaVerdicts(outcome.checks, outcome.report))
        run.media = outcome.report
        return outcome.checks
    last = memory.last(target, config, time.time())
    if last is None:
        return skipped(wanted, "the media probes")
    run.media = last.report
    carried = Carried(last.report.at, last.checks, ())
    return carry(carried, media.interval, runs="media is probed")


def _never(run: LadderRun) -> str | None:
    return None


STAGES: list[Stage] = [
    Stage("web", lambda target: LADDER.checks("web"), _never, _web),
    Stage("signalling", _signalling_wanted, _needs_config, _signalling),
    Stage("jwt", _jwt_wanted, _needs_signalling, _jwt),
    Stage("media", _media_wanted, _needs_login, _media),
]


def register_stage(stage: Stage, rows: tuple[CheckSpec, ...], *, after: str) -> None:
    """Add a stage (after the stage named ``after``) and its checks' rows to the table."""
    index = next(i for i, s in enumerate(STAGES) if s.name == after) + 1
    last = LADDER.checks(after)[-1]
    for row in reversed(rows):
        LADDER.add(row, after=last)
    STAGES.insert(index, stage)


def unregister_stage(name: str) -> None:
    """Take a stage and its rows out again."""
    for check in LADDER.checks(name):
        LADDER.remove(check)
    STAGES[:] = [s for s in STAGES if s.name != name]


async def run_ladder(runner: Runner, target: Target) -> ServerReport:
    """Run ``target``'s ladder, stage by stage, under one deadline; never raises
    except on cancellation."""
    started_at = time.time()
    t0 = time.monotonic()
    run = LadderRun(runner, target, asyncio.get_running_loop().time() + target.timeout)
    for stage in STAGES:
        wanted = tuple(c for c in stage.wanted(target) if _in_groups(target, c))
        if not wanted:
            continue
        cause = stage.blocked(run)
        if cause is not None:
            run.checks += skipped(wanted, cause)
            continue
        try:
            results = await stage.run(run, wanted)
        except (OSError, ssl.SSLError) as exc:
            # The server is not to blame: e.g. an unreadable ca_file.
            log.error("server %s: cannot set up the probe: %s", target.name, escape.plain(exc))
            results = _crashed(wanted, f"cannot set up the probe: {escape.plain(exc, 300)}")
        except Exception:  # our own bug: keep what earlier stages found
            log.exception("server %s: the %s stage crashed", target.name, stage.name)
            results = _crashed(wanted, "the probe crashed; see the monitor's log")
        run.checks += (r for r in results if r.check in wanted)
    return _report(run, started_at, t0)


def _in_groups(target: Target, check: Check) -> bool:
    return target.groups is None or LADDER.spec(check).group in target.groups


def _crashed(wanted: tuple[Check, ...], detail: str) -> tuple[CheckResult, ...]:
    first, *rest = wanted
    return (CheckResult(first, Reason.INTERNAL_ERROR, detail), *skipped(rest, first.value))


def _report(run: LadderRun, started_at: float, t0: float) -> ServerReport:
    web, xmpp = run.web, run.xmpp
    return ServerReport(
        server=run.target.name,
        started_at=started_at,
        finished_at=time.time(),
        duration=time.monotonic() - t0,
        checks=tuple(sorted(run.checks, key=lambda r: LADDER.order[r.check])),
        http_phases=web.http_phases if web else (),
        http_status=web.http_status if web else None,
        cert=web.cert if web else None,
        config=web.config if web else None,
        embed_limit_seconds=web.embed_limit_seconds if web else None,
        connect_rtt=web.connect_rtt if web else None,
        xmpp_phases=xmpp.phases if xmpp else (),
        ping_rtt=xmpp.ping_rtt if xmpp else None,
        role=xmpp.role if xmpp else None,
        affiliation=xmpp.affiliation if xmpp else None,
        jwt_cases=run.jwt_cases,
        jwt_ages=_ages(run),
        jwt_matrix_at=run.jwt_matrix_at,
        media=run.media,
    )


def _ages(run: LadderRun) -> tuple[tuple[JwtCase, float], ...]:
    """How old each case's verdict is: this round's, or the carried matrix's."""
    now, at = time.time(), run.jwt_matrix_at
    return tuple(
        (case, 0.0 if case is JwtCase.VALID or at is None else max(0.0, now - at))
        for case, _ in run.jwt_cases
    )
