"""The jwt family: the token matrix (a valid token, the refusal cases, the moderator pair).

The signalling family's login is the valid-token case; the refusal cases and
the moderator pair run every ``jwt.matrix_interval`` (``MATRIX_CARRY``), the
rounds in between carry their last verdicts (``monitor.checks.carry``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Hashable

from monitor.checks.carry import Carried, Policy
from monitor.checks.family import Family
from monitor.checks.jwt.cases import JwtCase
from monitor.checks.jwt.matrix import probe_matrix, valid_check
from monitor.checks.jwt.metrics import METRICS, lines
from monitor.checks.jwt.panels import panels
from monitor.checks.jwt.result import JwtResult
from monitor.checks.jwt.rows import ROWS
from monitor.checks.jwt.settings import JwtSettings
from monitor.checks.jwt.view import COLUMNS, JSON, tags
from monitor.checks.run import LadderRun
from monitor.checks.signalling.family import xmpp_settings
from monitor.checks.signalling.xmpp import XmppResult
from monitor.checks.tokens import mint
from monitor.domain import Target
from monitor.ladder import Check
from monitor.model import CheckResult, ConfigFacts, Reason, skipped

__all__ = ["FAMILY", "MATRIX_CARRY"]


def _shaped_by(target: Target, facts: ConfigFacts | None) -> Hashable:
    """What a matrix verdict depends on: not the schedule, the timeout or the labels."""
    return (
        target.url,
        target.tls_verify,
        target.ca_file,
        target.signalling,
        target.focus,
        target.join,
        target.token_key,
        facts,
    )


def _interval(target: Target) -> float | None:
    key = target.token_key
    return key.matrix_interval if key is not None and key.matrix else None


# How the matrix's verdicts are carried between its runs.
MATRIX_CARRY = Policy(_shaped_by, _interval)


def _matrix_due(run: LadderRun) -> bool:
    """Whether this round runs the refusal cases and the moderator pair (asked once
    config.js has been read: a verdict is carried only under the same facts)."""
    due = run.notes.get("jwt")
    if not isinstance(due, bool):
        due = run.notes["jwt"] = run.in_groups(Check.JWT_ENFORCED) and run.runner.memory(
            "jwt", MATRIX_CARRY
        ).due(run.target, run.config)
    return due


def _prepare(run: LadderRun) -> None:
    """The login mints the server's tokens; on a matrix round it is the
    moderator: false case, so it waits for role changes."""
    key = run.target.token_key
    if key is None:
        return
    run.login.token_for = functools.partial(mint, key)
    run.login.token_origins = key.signalling_origins
    run.login.settle = lambda: key.settle if _matrix_due(run) else 0.0


def _wanted(target: Target) -> tuple[Check, ...]:
    key = target.token_key
    if key is None or not target.signalling:
        return ()
    return tuple(r.check for r in ROWS) if key.matrix else (Check.JWT_VALID,)


def _needs_signalling(run: LadderRun) -> str | None:
    # A failed login is the valid-token case's own verdict; only a skip stops it.
    login = run.result(Check.SIGNALLING)
    if run.found(XmppResult) is None or login is None or login.reason is Reason.SKIPPED:
        return run.first_failure()
    return None


async def _run(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    """The token checks; the signalling family's ladder was the valid-token case.

    The refusal cases and the moderator pair run when due; other rounds
    carry their last verdicts.
    """
    config, target, main = run.config, run.target, run.found(XmppResult)
    key = target.token_key
    assert config is not None
    assert key is not None
    assert main is not None
    domain = config.domain or ""
    valid = valid_check(main, target.join, key, domain)
    known = valid.reason is not Reason.SKIPPED
    cases: tuple[tuple[JwtCase, bool], ...] = ((JwtCase.VALID, valid.success),) if known else ()
    run.results[JwtResult.family] = JwtResult(cases)
    if not {Check.JWT_ENFORCED, Check.MODERATION} & set(wanted):
        return (valid,)
    memory = run.runner.memory("jwt", MATRIX_CARRY)
    if _matrix_due(run):
        at = time.time()
        settings = xmpp_settings(run)
        matrix = await probe_matrix(
            run.runner.session, config, run.origin, settings, key, main, run.deadline
        )
        if matrix.cases or any(c.reason is not Reason.SKIPPED for c in matrix.checks):
            memory.keep(target, config, Carried(at, matrix.checks, matrix.cases))
            run.results[JwtResult.family] = JwtResult(cases + matrix.cases, at)
            return (valid, *matrix.checks)
    carried = memory.last(target, config)
    if carried is None:
        cause = "the valid token's login" if _matrix_due(run) else "the token matrix"
        return (valid, *skipped((Check.JWT_ENFORCED, Check.MODERATION), cause))
    run.results[JwtResult.family] = JwtResult(cases + carried.found, carried.at)
    return (valid, *memory.carry(target, carried))


FAMILY = Family(
    name="jwt",
    rows=ROWS,
    wanted=_wanted,
    blocked=_needs_signalling,
    run=_run,
    prepare=_prepare,
    metrics=METRICS,
    lines=lines,
    json=JSON,
    columns=COLUMNS,
    settings=JwtSettings,
    panels=panels,
    tags=tags,
)
