"""The signalling family: the XMPP login, the focus and the MUC join, as a Jitsi client.

It runs once config.js has been read (the web family), over WebSocket or
BOSH (``xmpp/``). Its login is also the jwt family's valid-token case and
the media family's service discovery: they ask it through ``LadderRun.login``.
"""

from __future__ import annotations

from monitor.checks.family import Family
from monitor.checks.run import LadderRun
from monitor.checks.signalling.metrics import METRICS, lines
from monitor.checks.signalling.panels import panels
from monitor.checks.signalling.rows import ROWS
from monitor.checks.signalling.settings import SignallingSettings
from monitor.checks.signalling.view import COLUMNS, JSON
from monitor.checks.signalling.xmpp import XmppSettings, probe_xmpp, signalling_checks
from monitor.checks.tokens import origin_of_url
from monitor.checks.web.probe import WebResult
from monitor.domain import Target
from monitor.ladder import Check
from monitor.model import CheckResult

__all__ = ["FAMILY", "xmpp_settings"]


def _wanted(target: Target) -> tuple[Check, ...]:
    if not target.signalling:
        return ()
    return signalling_checks(XmppSettings(focus=target.focus, join=target.join))


def _needs_config(run: LadderRun) -> str | None:
    configjs = run.result(Check.CONFIGJS)
    if run.config is None or configjs is None or not configjs.success:
        return run.first_failure()
    return None


def xmpp_settings(run: LadderRun) -> XmppSettings:
    """The signalling settings of this run, with what later families ask of the login
    (the token matrix varies them per case); made once per run."""
    made = run.notes.get("signalling")
    if isinstance(made, XmppSettings):
        return made
    target, login = run.target, run.login
    origins: tuple[str, ...] = ()
    if login.token_for is not None:
        # Where tokens may go besides the server's origin: the origin its page
        # redirected to, and the origins the token's family names.
        web = run.found(WebResult)
        page = origin_of_url(web.page_url) if web is not None else None
        origins = (*((page,) if page else ()), *login.token_origins)
    made = run.notes["signalling"] = XmppSettings(
        focus=target.focus,
        join=target.join,
        user_agent=run.runner.user_agent,
        ssl_context=run.ssl_context,
        resolver=run.runner.resolver,
        token_for=login.token_for,
        settle=login.settle(),
        same_host=target.confined,
        reach=run.reach,
        token_origins=origins,
        after_login=login.after_login(),
    )
    return made


async def _run(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    config = run.config
    assert config is not None
    xmpp = await probe_xmpp(
        run.runner.session, config, run.origin, xmpp_settings(run), run.deadline
    )
    run.results[xmpp.family] = xmpp
    return xmpp.checks


FAMILY = Family(
    name="signalling",
    rows=ROWS,
    wanted=_wanted,
    blocked=_needs_config,
    run=_run,
    metrics=METRICS,
    lines=lines,
    json=JSON,
    columns=COLUMNS,
    settings=SignallingSettings,
    panels=panels,
)
