"""The signalling family: the XMPP login, the focus and the MUC join, as a Jitsi client.

It runs once config.js has been read (the web family), over WebSocket or
BOSH (``xmpp/``). Its login is also the jwt family's valid-token case and
the media family's service discovery (``LadderRun.xmpp_settings``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.checks.family import Family
from monitor.checks.signalling.metrics import METRICS, lines
from monitor.checks.signalling.rows import ROWS
from monitor.checks.signalling.settings import SignallingSettings
from monitor.checks.signalling.view import COLUMNS, JSON
from monitor.checks.signalling.xmpp import XmppSettings, probe_xmpp, signalling_checks
from monitor.domain import Target
from monitor.ladder import Check
from monitor.model import CheckResult

if TYPE_CHECKING:
    from monitor.runner import LadderRun

__all__ = ["FAMILY"]


def _wanted(target: Target) -> tuple[Check, ...]:
    if not target.signalling:
        return ()
    return signalling_checks(XmppSettings(focus=target.focus, join=target.join))


def _needs_config(run: LadderRun) -> str | None:
    configjs = run.result(Check.CONFIGJS)
    if run.config is None or configjs is None or not configjs.success:
        return run.first_failure()
    return None


async def _run(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    config = run.config
    assert config is not None
    xmpp = await probe_xmpp(run.runner.session, config, run.origin, run.xmpp_settings, run.deadline)
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
)
