"""The check families, in ladder order: ``FAMILIES``, and the table their rows make.

Each family is a folder (``web``, ``signalling``, ``jwt``, ``media``) whose
``family.py`` builds its ``Family`` (``monitor.checks.family``). Adding a
family is a new folder plus one line in ``FAMILIES``. Modules here that are
no one family's: ``family`` (the interface), ``carry`` (carried verdicts,
for every family whose checks run less often than the ladder) and
``tokens`` (token minting: the signalling login and the jwt matrix both
mint).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from monitor.checks.family import Family
from monitor.checks.jwt.family import FAMILY as JWT
from monitor.checks.media.family import FAMILY as MEDIA
from monitor.checks.signalling.family import FAMILY as SIGNALLING
from monitor.checks.web.family import FAMILY as WEB
from monitor.ladder import Ladder
from monitor.model import CheckResult, FamilyResult, ServerReport

__all__ = ["FAMILIES", "LADDER", "Family", "ladder_of", "make_report"]

FAMILIES: tuple[Family, ...] = (WEB, SIGNALLING, JWT, MEDIA)


def ladder_of(families: Iterable[Family]) -> Ladder:
    """The table of the rows of ``families``, in their order."""
    return Ladder(row for family in families for row in family.rows)


LADDER: Ladder = ladder_of(FAMILIES)


def make_report(
    ladder: Ladder,
    *,
    server: str,
    started_at: float,
    duration: float,
    checks: Iterable[CheckResult],
    results: Mapping[str, FamilyResult] | Iterable[FamilyResult] = (),
    finished_at: float | None = None,
) -> ServerReport:
    """A report, its checks in ladder order and judged by ``ladder``.

    ``results`` is what each family found besides (a map by family name, or
    the results themselves).
    """
    ordered = tuple(sorted(checks, key=lambda r: ladder.order[r.check]))
    found = (
        dict(results)
        if isinstance(results, Mapping)
        else {result.family: result for result in results}
    )
    return ServerReport(
        server=server,
        started_at=started_at,
        finished_at=time.time() if finished_at is None else finished_at,
        duration=duration,
        checks=ordered,
        up=ladder.up(ordered),
        first_failure=ladder.first_failure(ordered),
        results=MappingProxyType(found),
    )
