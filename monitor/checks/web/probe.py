"""The web part of a server's ladder: page, config.js, external_api.js, embed limit.

One deadline covers the whole ladder. A transport failure (DNS, connect,
TLS, timeout) ends it, and the checks after it are reported as skipped; an
HTTP-level failure of one file does not stop the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar, Final
from urllib.parse import urljoin

from monitor.checks.web.configjs import Reader, reader
from monitor.checks.web.rows import ROWS
from monitor.ladder import Check
from monitor.model import CertInfo, CheckResult, ConfigFacts, Phase, Reason, skipped
from monitor.net import NetError
from monitor.net.http import Fetch, HttpClient

__all__ = ["EMBED_LIMIT_SECONDS", "WebResult", "probe_web"]

# jitsi-meet ends an embedded meeting this long after it starts when
# config.disableIframeAPI is true (react/features/conference/constants.ts).
EMBED_LIMIT_SECONDS: Final = 300

_TRANSPORT: Final = frozenset(
    {
        Reason.DNS_ERROR,
        Reason.CONNECT_REFUSED,
        Reason.CONNECT_ERROR,
        Reason.TIMEOUT,
        Reason.TLS_EXPIRED,
        Reason.TLS_HOSTNAME_MISMATCH,
        Reason.TLS_UNTRUSTED,
        Reason.TLS_ERROR,
    }
)


# The checks that fetch a file; the embed verdict comes from config.js.
_WEB_CHECKS: Final = tuple(r.check for r in ROWS if r.check is not Check.EMBED)


@dataclass(frozen=True, slots=True)
class WebResult:
    """What the web ladder found (a report's ``result(WebResult)``)."""

    family: ClassVar[str] = "web"

    checks: tuple[CheckResult, ...] = ()
    http_phases: tuple[Phase, ...] = ()
    http_status: int | None = None
    cert: CertInfo | None = None
    config: ConfigFacts | None = None
    embed_limit_seconds: int | None = None
    # One TCP connect, for the smoothed round trip (None: no connection made).
    connect_rtt: float | None = None
    # The page's URL after its redirects (the server's own URL without an answer).
    page_url: str = ""

    def phase_seconds(self, name: str) -> float | None:
        """How long the page GET's phase ``name`` took (None: it did not happen)."""
        return next((p.seconds for p in self.http_phases if p.name == name), None)


class _WebSteps:
    def __init__(
        self, client: HttpClient, base_url: str, kind: str, deadline: float, configjs: Reader
    ) -> None:
        self.client = client
        self.configjs = configjs
        self.base_url = base_url
        self.kind = kind
        self.deadline = deadline
        self.checks: list[CheckResult] = []
        self.page: Fetch | None = None
        self.config: ConfigFacts | None = None
        self.stopped: CheckResult | None = None
        self.inflight: tuple[Check, Fetch, str] | None = None
        # config.js's fetch while its engine evaluates it: a deadline that
        # strikes then is config.js's own timeout, whatever thread or loop
        # lateness kept the engine's earlier stop from being seen first.
        self.evaluating: Fetch | None = None

    async def fetch(self, check: Check, path: str) -> Fetch | None:
        """GET one file; on failure record the check and return None."""
        if self.stopped is not None:
            self.skip(check)
            return None
        fetch = Fetch()
        if check is Check.WEB:
            self.page = fetch
        self.inflight = (check, fetch, path)
        try:
            await self.client.get(urljoin(self.base_url, path), fetch)
        except NetError as exc:
            self.inflight = None
            result = CheckResult(check, exc.reason, exc.detail, fetch.phase_list())
            self.checks.append(result)
            if exc.reason in _TRANSPORT:
                self.stopped = result
            return None
        # Cleared only on these normal paths: when the deadline cancels the
        # fetch it stays set, for timed_out() to name.
        self.inflight = None
        response = fetch.response
        assert response is not None
        if not 200 <= response.status < 300:
            self.checks.append(
                CheckResult(
                    check,
                    Reason.HTTP_STATUS,
                    f"HTTP {response.status} for /{path}",
                    fetch.phase_list(),
                )
            )
            return None
        return fetch

    def page_url(self) -> str:
        """The URL a browser's ``location`` has: the page's, after its redirects."""
        page = self.page.response if self.page is not None else None
        if page is not None and 200 <= page.status < 300:
            return page.url
        return self.base_url

    def skip(self, check: Check) -> None:
        cause = self.stopped.check.value if self.stopped else "an earlier check"
        self.checks += skipped((check,), cause)

    async def run(self) -> None:
        page = await self.fetch(Check.WEB, "")
        if page is not None:
            self.checks.append(CheckResult(Check.WEB, Reason.OK, "", page.phase_list()))

        cfg = await self.fetch(Check.CONFIGJS, "config.js")
        if cfg is not None and cfg.response is not None:
            self.evaluating = cfg
            found = await self.configjs.read(
                cfg.response.body, self.page_url(), cfg.response.url, self.deadline
            )
            self.evaluating = None
            self.config = found.facts
            self.checks.append(
                CheckResult(Check.CONFIGJS, found.reason, found.detail, cfg.phase_list())
            )

        api = await self.fetch(Check.EXTERNAL_API, "external_api.js")
        if api is not None and api.response is not None:
            if b"JitsiMeetExternalAPI" in api.response.body:
                self.checks.append(CheckResult(Check.EXTERNAL_API, Reason.OK, "", api.phase_list()))
            else:
                self.checks.append(
                    CheckResult(
                        Check.EXTERNAL_API,
                        Reason.EXTERNAL_API_INVALID,
                        "external_api.js does not define JitsiMeetExternalAPI",
                        api.phase_list(),
                    )
                )

    def timed_out(self) -> None:
        """Record the deadline striking: the check in flight fails, the rest are skipped."""
        reason = Reason.TIMEOUT
        if self.evaluating is not None:
            check, reason = Check.CONFIGJS, Reason.CONFIGJS_TIMEOUT
            detail = "config.js was still being evaluated at the ladder's deadline"
            phases = self.evaluating.phase_list()
        elif self.inflight is not None:
            check, fetch, path = self.inflight
            detail = f"no answer before the deadline (during {fetch.current} of /{path})"
            phases = fetch.phase_list()
        else:
            pending = [c for c in _WEB_CHECKS if c not in {r.check for r in self.checks}]
            if not pending:
                return
            check, detail, phases = pending[0], "deadline reached", ()
        self.stopped = CheckResult(check, reason, detail, phases)
        self.checks.append(self.stopped)
        for rest in _WEB_CHECKS:
            if rest not in {r.check for r in self.checks}:
                self.skip(rest)

    def embed(self) -> tuple[CheckResult, int | None]:
        """The embed-limit verdict, from config.js and the server's kind."""
        facts = self.config
        if facts is None:
            return CheckResult(
                Check.EMBED, Reason.SKIPPED, "not known: config.js gave no config"
            ), None
        if facts.disable_iframe_api and self.kind == "jaas":
            return CheckResult(
                Check.EMBED, Reason.OK, "disableIframeAPI is set but JaaS meetings are exempt"
            ), 0
        if facts.disable_iframe_api:
            return (
                CheckResult(
                    Check.EMBED,
                    Reason.EMBED_LIMITED,
                    "disableIframeAPI is true: embedded meetings end after "
                    f"{EMBED_LIMIT_SECONDS} s",
                ),
                EMBED_LIMIT_SECONDS,
            )
        return CheckResult(Check.EMBED, Reason.OK, "embedded meetings are not cut off"), 0


async def probe_web(
    client: HttpClient,
    base_url: str,
    kind: str,
    deadline: float,
    configjs: Reader | None = None,
) -> WebResult:
    """Run the web ladder against ``base_url`` until the loop time ``deadline``.

    ``configjs`` evaluates config.js (the runner's; without one, the module's
    default reader, for tools and benchmarks). Never raises for the server's
    faults; every outcome is in the result.
    """
    ladder = _WebSteps(client, base_url, kind, deadline, configjs or reader())
    try:
        async with asyncio.timeout_at(deadline):
            await ladder.run()
    except TimeoutError:
        ladder.timed_out()
    embed, embed_limit = ladder.embed()
    checks = (*sorted(ladder.checks, key=lambda r: _WEB_CHECKS.index(r.check)), embed)
    page = ladder.page
    return WebResult(
        checks=checks,
        http_phases=page.phase_list() if page else (),
        http_status=page.response.status if page and page.response else None,
        cert=client.cert,
        config=ladder.config,
        embed_limit_seconds=embed_limit,
        connect_rtt=client.connect_rtt,
        page_url=ladder.page_url(),
    )
