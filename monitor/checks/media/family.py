"""The media family: STUN and TURN, found the way a participant's browser finds them.

The services come from the signalling family's login (an extdisco query,
``LadderRun.login``) and from config.js. They are probed every
``media.interval`` (``MEDIA_CARRY``); the rounds in between carry the last
verdicts (``monitor.checks.carry``).
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from monitor.checks.carry import Carried, Policy
from monitor.checks.family import Family
from monitor.checks.media.extdisco import Discovery
from monitor.checks.media.metrics import METRICS, lines
from monitor.checks.media.panels import panels
from monitor.checks.media.probe import probe_media
from monitor.checks.media.relay_report import RelayReport
from monitor.checks.media.result import MediaReport
from monitor.checks.media.rows import ROWS
from monitor.checks.media.settings import MediaSettings
from monitor.checks.media.view import COLUMNS, JSON
from monitor.checks.run import LadderRun
from monitor.domain import Target
from monitor.ladder import Check
from monitor.model import CheckResult, ConfigFacts, skipped

__all__ = ["FAMILY", "MEDIA_CARRY"]


def _shaped_by(target: Target, facts: ConfigFacts | None) -> Hashable:
    return (target.url, target.tls_verify, target.ca_file, target.media, facts)


def _interval(target: Target) -> float | None:
    return target.media.interval if target.media is not None else None


# How the media verdicts are carried between their runs.
MEDIA_CARRY = Policy(_shaped_by, _interval, runs="media is probed")


def _media_due(run: LadderRun) -> bool:
    """Whether this round probes STUN and TURN (else it carries their last verdicts)."""
    due = run.notes.get("media")
    if not isinstance(due, bool):
        due = run.notes["media"] = run.in_groups(Check.TURN) and run.runner.memory(
            "media", MEDIA_CARRY
        ).due(run.target, run.config, time.time())
    return due


def _discovery(run: LadderRun) -> Discovery | None:
    """The extdisco query the signalling login makes for this run, when media is due."""
    made = run.notes.get("media.discovery")
    if isinstance(made, Discovery):
        return made
    media = run.target.media
    if media is None or not _media_due(run):
        return None
    made = run.notes["media.discovery"] = Discovery(media.max_services, run.deadline)
    return made


def _prepare(run: LadderRun) -> None:
    """The services are asked for after the signalling login."""
    run.login.after_login = lambda: _discovery(run)


def _wanted(target: Target) -> tuple[Check, ...]:
    return tuple(r.check for r in ROWS) if target.media is not None else ()


def _needs_login(run: LadderRun) -> str | None:
    # The services are asked for over the signalling family's session.
    login = run.result(Check.SIGNALLING)
    if login is None or not login.success:
        return run.first_failure()
    return None


async def _run(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    """STUN and TURN, when due; other rounds carry their last verdicts."""
    config, target, media = run.config, run.target, run.target.media
    assert config is not None
    assert media is not None
    memory = run.runner.memory("media", MEDIA_CARRY)
    if _media_due(run):
        outcome = await probe_media(
            _discovery(run),
            config.stun_servers,
            media,
            run.runner.resolver,
            run.ssl_context,
            run.deadline,
        )
        found = (outcome.report, outcome.relay)
        memory.keep(target, config, Carried(outcome.report.at, outcome.checks, found))
        run.results[MediaReport.family] = outcome.report
        run.results[RelayReport.family] = outcome.relay
        return outcome.checks
    last = memory.last(target, config, time.time())
    if last is None:
        return skipped(wanted, "the media probes")
    report: MediaReport
    relay: RelayReport
    report, relay = last.found
    run.results[MediaReport.family] = report
    run.results[RelayReport.family] = relay
    return memory.carry(target, last)


FAMILY = Family(
    name="media",
    rows=ROWS,
    wanted=_wanted,
    blocked=_needs_login,
    run=_run,
    prepare=_prepare,
    metrics=METRICS,
    lines=lines,
    json=JSON,
    columns=COLUMNS,
    settings=MediaSettings,
    panels=panels,
)
