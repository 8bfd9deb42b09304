"""The ladder table is the one place that says what a ladder is.

A toy stage, registered with one table row and its probe function, shows up
everywhere a check does: in the report and its verdict, in a pool's
``require``, in ``/probe``'s ``checks=``, in the metrics and the JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

import pytest

from monitor.config import ConfigError
from monitor.decisions import Decisions
from monitor.ladder import (
    FAILOVER_REASONS,
    HTTP_PHASES,
    LADDER,
    XMPP_PHASES,
    Check,
    CheckSpec,
    PoolChange,
)
from monitor.metrics import Exposition
from monitor.model import CheckResult, Reason, ServerReport
from monitor.ondemand import OnDemand, Refused
from monitor.runner import STAGES, LadderRun, Runner, Stage, register_stage, unregister_stage
from monitor.state import State
from monitor.views import report_dict
from tests.support.paths import ROOT
from tests.support.sites import StartSite, jitsi_app, make_config, text_handler


class ToyCheck(StrEnum):
    TOY = "toy"


async def _toy_probe(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    """GET /toy.txt on the server: ok on 200."""
    async with run.runner.session.get(f"{run.target.url}toy.txt") as response:
        if response.status == 200:
            return (CheckResult(ToyCheck.TOY, Reason.OK, "toy answered"),)
        detail = f"HTTP {response.status} for /toy.txt"
        return (CheckResult(ToyCheck.TOY, Reason.HTTP_STATUS, detail),)


def _after_web(run: LadderRun) -> str | None:
    web = run.result(Check.WEB)
    return None if web is not None and web.success else run.first_failure()


@pytest.fixture
def toy_stage() -> Iterator[None]:
    row = CheckSpec(ToyCheck.TOY, "toy", "toy", verdict=True, require="toy", group="toy")
    stage = Stage("toy", lambda target: (ToyCheck.TOY,), _after_web, _toy_probe)
    register_stage(stage, (row,), after="jwt")
    try:
        yield
    finally:
        unregister_stage("toy")
    assert "toy" not in LADDER.requirements


def _config(url: str) -> str:
    return f"""
servers:
  - name: toy-server
    url: {url}
    signalling: {{enabled: false}}
pools:
  - name: toys
    servers: [toy-server]
    require: [web, toy]
"""


@pytest.mark.usefixtures("toy_stage")
@pytest.mark.parametrize(("status", "up"), [(200, True), (503, False)])
async def test_a_toy_stage_is_one_row_and_a_probe(
    start_site: StartSite, status: int, up: bool
) -> None:
    site = await start_site(jitsi_app(routes={"/toy.txt": text_handler("toy", status)}))
    cfg = make_config(_config(site.url))
    (target,) = cfg.targets()
    runner = Runner(cfg)
    try:
        report = await runner.run_now(target)
    finally:
        await runner.close()

    # The report: the toy check after the web ones, deciding the verdict.
    assert [r.check.value for r in report.checks] == [
        "web",
        "configjs",
        "external_api",
        "embed",
        "toy",
    ]
    toy = report.check(ToyCheck.TOY)
    assert toy is not None
    assert toy.success is up
    assert report.up is up
    if not up:
        assert report.first_failure is toy
        assert toy.detail == "HTTP 503 for /toy.txt"

    # A pool that requires it.
    state = State()
    state.set_targets(cfg.targets())
    state.set_pools(cfg.fleet(None)[1])
    exposition = Exposition(state)
    Decisions(state, logged=False).take(state.record(report))
    (candidate,) = state.pool_candidates["toys"]
    assert candidate.eligible is up
    assert candidate.why == ("" if up else "toy: http_status")

    # The metrics and the JSON.
    text = exposition.render().decode()
    value = "1.0" if up else "0.0"
    assert f'jitsi_check_success{{check="toy",location="default",server="toy-server"}} {value}' in (
        text
    )
    assert 'jitsi_monitor_probe_errors_total{check="toy",location="default"} 0' in text
    checks = {c["check"]: c for c in report_dict(target, report)["checks"]}
    assert checks["toy"]["success"] is up


@pytest.mark.usefixtures("toy_stage")
async def test_a_toy_stage_is_skipped_with_why_when_web_fails(start_site: StartSite) -> None:
    site = await start_site(jitsi_app(index_status=500))
    cfg = make_config(_config(site.url))
    runner = Runner(cfg)
    try:
        report = await runner.run_now(cfg.targets()[0])
    finally:
        await runner.close()
    toy = report.check(ToyCheck.TOY)
    assert toy is not None
    assert (toy.reason, toy.detail) == (Reason.SKIPPED, "not tried: web failed")


@pytest.mark.usefixtures("toy_stage")
async def test_a_toy_stage_has_its_probe_group_and_require_word(start_site: StartSite) -> None:
    site = await start_site(jitsi_app())
    cfg = make_config(_config(site.url))  # `require: [web, toy]` is valid now
    runner = Runner(cfg)
    try:
        ondemand = OnDemand(runner, cfg)
        trimmed = ondemand.target("toy-server", "toy")
        assert trimmed.groups == frozenset({"web", "signalling", "jwt", "toy"})
        with pytest.raises(Refused, match="use web, signalling, jwt, toy"):
            ondemand.target("toy-server", "nonsense")
        report = await runner.run_now(ondemand.target("toy-server", "web"))
        assert ToyCheck.TOY not in {r.check for r in report.checks}
    finally:
        await runner.close()


def test_an_unknown_require_word_is_refused_with_the_table_s_words() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(_config("https://meet.example.org/"))
    (problem,) = caught.value.problems
    assert "pools[0].require[1]" in str(problem)
    assert "'toy' is not a requirement" in str(problem)
    assert "web, signalling, focus, muc, jwt, moderation" in str(problem)


def test_every_check_has_one_row_and_each_stage_a_function() -> None:
    assert {row.check for row in LADDER} == set(Check)
    assert {row.stage for row in LADDER} == {stage.name for stage in STAGES}
    # Stages run in the order of their rows.
    order = [row.stage for row in LADDER]
    assert [stage.name for stage in STAGES] == list(dict.fromkeys(order))
    assert LADDER.always <= LADDER.verdict
    with pytest.raises(ValueError, match="declared twice"):
        LADDER.add(LADDER.spec(Check.WEB))


def test_the_docs_document_every_check_phase_case_and_reason() -> None:
    def page(name: str) -> str:
        return (ROOT / "docs" / name).read_text()

    checks, metrics, configuration, pools = (
        page("checks.md"),
        page("metrics.md"),
        page("configuration.md"),
        page("pools.md"),
    )
    for r in LADDER:
        assert f"| `{r.check.value}` |" in checks, f"docs/checks.md has no row `{r.check.value}`"
    for phase in [*HTTP_PHASES, *XMPP_PHASES]:
        assert f"`{phase}`" in metrics, f"docs/metrics.md does not name the phase `{phase}`"
    for word in LADDER.requirements:
        assert f"`{word}`" in configuration, f"docs/configuration.md does not name `{word}`"
    for change in PoolChange:
        assert f"| `{change.value}` |" in pools, f"docs/pools.md does not define `{change.value}`"
    assert {c.value for c in FAILOVER_REASONS} < {c.value for c in PoolChange}


def test_a_report_is_judged_by_the_table() -> None:
    def report(*results: tuple[Check, Reason]) -> ServerReport:
        checks = tuple(CheckResult(c, r) for c, r in results)
        return ServerReport("s", 0.0, 1.0, 1.0, checks)

    web = [(c, Reason.OK) for c in LADDER.checks("web")]
    assert report(*web).up
    # A failed embed check describes fitness, not health.
    assert report(*web[:-1], (Check.EMBED, Reason.EMBED_LIMITED)).up
    assert not report(*web, (Check.SIGNALLING, Reason.TIMEOUT)).up
    # A ladder that did not run every always-run check is not up.
    assert not report(*web[1:]).up
