"""One ladder in progress (``LadderRun``): what its families share and hand one another.

The runner (``monitor.runner.Runner``) makes one per ladder; a family reads
from it what the runner shares (``Probing``: the resolver, the sessions, TLS
contexts, config.js's reader, the carried verdicts), what the earlier
families found (``found``), and leaves its own result in ``results``.

What a later family needs done during an earlier family's probe goes
through a handoff the earlier family reads. The one there is: the
signalling login (``Login``), which the jwt family gives its token and the
media family its service discovery, each in its ``prepare``, before any
family runs.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import aiohttp

from monitor.checks.carry import Memory, Policy
from monitor.domain import Target
from monitor.ladder import Check, Ladder
from monitor.model import CheckResult, ConfigFacts, FamilyResult, R, Reason
from monitor.net import Resolver
from monitor.net.addresses import Reach

__all__ = ["AfterLogin", "LadderRun", "Login", "Probing"]

# Called after the signalling login with the session's iq sender and the XMPP domain.
AfterLogin = Callable[[Callable[..., Awaitable[Element]], str], Awaitable[None]]


class Probing(Protocol):
    """What the runner shares with every ladder (``monitor.runner.Runner`` is one)."""

    @property
    def user_agent(self) -> str: ...

    @property
    def resolver(self) -> Resolver: ...

    @property
    def session(self) -> aiohttp.ClientSession: ...

    # config.js's reader (the web family's ``configjs.Reader``; typed loosely so
    # that this module needs nothing of a family).
    @property
    def configjs(self) -> object: ...

    @property
    def ladder(self) -> Ladder: ...

    def ssl_context(self, target: Target) -> ssl.SSLContext: ...

    def memory(self, family: str, policy: Policy) -> Memory[Any]: ...


@dataclass
class Login:
    """What later families ask of this run's signalling login.

    The values are asked for when the login is about to start (after the web
    family has read config.js), so a family can decide then, e.g. whether
    its slow checks are due.
    """

    # Mints a token for the login's room (servers with JWT authentication).
    token_for: Callable[[str], str] | None = None
    # Origins besides the server's (and its page's) where a token may go.
    token_origins: tuple[str, ...] = ()
    # How long to keep reading presences after the join, for role changes.
    settle: Callable[[], float] = lambda: 0.0
    # What to do once logged in (e.g. ask for the media services).
    after_login: Callable[[], AfterLogin | None] = lambda: None


@dataclass
class LadderRun:
    """One ladder in progress: what its families share, and what they found so far."""

    runner: Probing
    target: Target
    deadline: float  # on the event loop's clock
    checks: list[CheckResult] = field(default_factory=list)
    # What each family found besides its checks, by family name (the report's ``results``).
    results: dict[str, FamilyResult] = field(default_factory=dict)
    # What later families ask of the signalling login.
    login: Login = field(default_factory=Login)
    # What config.js said, once the web family has read it.
    config: ConfigFacts | None = None
    # A family's own state for this run (e.g. whether its slow checks are due), by its name.
    notes: dict[str, Any] = field(default_factory=dict)

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

    @functools.cached_property
    def reach(self) -> Reach | None:
        """Where the server's URLs may lead the monitor: anywhere for a
        ``self_hosted`` server; else public addresses only, besides the
        configured URL's own host (``monitor.net.addresses``)."""
        if self.target.kind == "self_hosted":
            return None
        return Reach(urlsplit(self.target.url).hostname or "")

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
