"""The web family: the server's page, config.js, external_api.js and the embed limit.

Every ladder runs it first (its checks are ``always``); what config.js says
is what the later families read (``LadderRun.config``).
"""

from __future__ import annotations

from monitor.checks.family import Family
from monitor.checks.run import LadderRun
from monitor.checks.web.configjs import Reader
from monitor.checks.web.metrics import METRICS, lines
from monitor.checks.web.panels import panels
from monitor.checks.web.probe import probe_web
from monitor.checks.web.rows import ROWS
from monitor.checks.web.view import COLUMNS, JSON, page_facts, tags
from monitor.domain import Target
from monitor.ladder import Check
from monitor.model import CheckResult
from monitor.net.http import HttpClient, origin_of

__all__ = ["FAMILY"]


def _wanted(target: Target) -> tuple[Check, ...]:
    return tuple(r.check for r in ROWS)


def _never(run: LadderRun) -> str | None:
    return None


async def _run(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    target = run.target
    configjs = run.runner.configjs
    assert isinstance(configjs, Reader), "the runner holds this family's config.js reader"
    async with HttpClient(
        resolver=run.runner.resolver,
        ssl_context=run.ssl_context,
        user_agent=run.runner.user_agent,
        max_body_bytes=target.max_body_bytes,
        max_redirects=target.max_redirects,
        confine_to=origin_of(target.url) if target.confined else None,
        reach=run.reach,
    ) as client:
        web = await probe_web(client, target.url, target.kind, run.deadline, configjs)
    run.results[web.family] = web
    run.config = web.config
    return web.checks


FAMILY = Family(
    name="web",
    rows=ROWS,
    wanted=_wanted,
    blocked=_never,
    run=_run,
    metrics=METRICS,
    lines=lines,
    json=JSON,
    columns=COLUMNS,
    tags=tags,
    page_facts=page_facts,
    panels=panels,
)
