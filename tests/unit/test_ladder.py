"""The ladder table is the one place that says what a ladder is, and a check
family is one folder plus one line in ``FAMILIES``.

A toy family, built with the same ``Family`` the real ones are (its own
``Check``, row, probe, result, metric family, JSON part, column and panels,
no separate enum), added to the shipped families the way a new one would
be, shows up everywhere a family does: in the report and its verdict, in
the metrics, in the JSON view, in the table and on the dashboards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from monitor.checks import FAMILIES, LADDER, ladder_of, make_report
from monitor.checks.family import Column, Family, JsonPart, Labels, PanelRow, Placed, lay_out
from monitor.checks.run import LadderRun
from monitor.config import ConfigError
from monitor.domain import Target
from monitor.grafana import ONE_SERVER, SERVER_UID, Grid, query, sel, timeseries
from monitor.ladder import (
    FAILOVER_REASONS,
    HTTP_PHASES,
    XMPP_PHASES,
    Check,
    CheckSpec,
    PoolChange,
)
from monitor.metrics import Exposition
from monitor.metrics.lines import server_families
from monitor.model import CheckResult, Reason, ServerReport
from monitor.promtext import MetricFamily, gauge, num
from monitor.runner import Runner
from monitor.state import State
from monitor.views import report_dict
from tests.support.paths import ROOT
from tests.support.sites import StartSite, jitsi_app, make_config, text_handler

# -- the toy family: what a folder monitor/checks/toy/ would hold ----------------

TOY = Check("toy")
ROWS = (CheckSpec(TOY, "toy", "toy", verdict=True, require="toy", group="toy"),)


@dataclass(frozen=True, slots=True)
class ToyResult:
    family: ClassVar[str] = "toy"

    status: int
    seconds: float


def _wanted(target: Target) -> tuple[Check, ...]:
    return (TOY,)


def _after_web(run: LadderRun) -> str | None:
    web = run.result(Check.WEB)
    return None if web is not None and web.success else run.first_failure()


async def _run(run: LadderRun, wanted: tuple[Check, ...]) -> tuple[CheckResult, ...]:
    """GET /toy.txt on the server: ok on 200."""
    async with run.runner.session.get(f"{run.target.url}toy.txt") as response:
        run.results[ToyResult.family] = ToyResult(response.status, 0.25)
        if response.status == 200:
            return (CheckResult(TOY, Reason.OK, "toy answered"),)
        return (CheckResult(TOY, Reason.HTTP_STATUS, f"HTTP {response.status} for /toy.txt"),)


METRICS: tuple[tuple[Any, MetricFamily], ...] = (
    ("end", gauge("jitsi_toy_seconds", "How long the toy took.")),
)


def _lines(report: ServerReport, labels: Labels) -> Mapping[str, str]:
    toy = report.result(ToyResult)
    if toy is None:
        return {}
    return {"jitsi_toy_seconds": f"jitsi_toy_seconds{{{labels.both}}} {num(toy.seconds)}\n"}


def _json(report: ServerReport) -> Mapping[str, Any]:
    toy = report.result(ToyResult)
    return {} if toy is None else {"toy": {"status": toy.status}}


def _cell(report: ServerReport) -> str:
    toy = report.result(ToyResult)
    return "-" if toy is None else str(toy.status)


def _panels(uid: str) -> tuple[PanelRow, ...]:
    if uid != SERVER_UID:
        return ()
    seconds = timeseries(
        "Toy",
        "How long the toy took (jitsi_toy_seconds).",
        [query(sel("jitsi_toy_seconds", ONE_SERVER), "{{location}}")],
        unit="s",
    )
    return (PanelRow("end", "Toys", (Placed(seconds, w=24, h=6),)),)


TOY_FAMILY = Family(
    name="toy",
    rows=ROWS,
    wanted=_wanted,
    blocked=_after_web,
    run=_run,
    metrics=METRICS,
    lines=_lines,
    json=(JsonPart("end", _json),),
    columns=(Column("end", "toy", _cell),),
    panels=_panels,
)
# What monitor/checks/__init__.py would say with the folder added.
WITH_TOY = (*FAMILIES, TOY_FAMILY)


def _config(url: str) -> str:
    return f"""
servers:
  - name: toy-server
    url: {url}
    signalling: {{enabled: false}}
"""


async def _probe(url: str) -> tuple[Target, ServerReport]:
    cfg = make_config(_config(url))
    (target,) = cfg.targets()
    runner = Runner(cfg, WITH_TOY)
    try:
        return target, await runner.run_now(target)
    finally:
        await runner.close()


@pytest.mark.parametrize(("status", "up"), [(200, True), (503, False)])
async def test_a_toy_family_is_a_folder_and_one_line(
    start_site: StartSite, status: int, up: bool
) -> None:
    site = await start_site(jitsi_app(routes={"/toy.txt": text_handler("toy", status)}))
    target, report = await _probe(site.url)

    # Its row: in the table after the media family's, deciding the verdict.
    ladder = ladder_of(WITH_TOY)
    assert ladder.checks("toy") == (TOY,)
    assert ladder.order[TOY] == ladder.order[ladder.checks("media")[-1]] + 1
    assert TOY in ladder.verdict
    assert ladder.requirements["toy"] == (TOY,)
    assert Check("toy") is TOY, "a check is one name, however it is spelled"

    # The report: the toy check after the web ones, deciding the verdict.
    assert [r.check.value for r in report.checks] == [
        "web",
        "configjs",
        "external_api",
        "embed",
        "toy",
    ]
    toy = report.check(TOY)
    assert toy is not None
    assert toy.success is up
    assert report.up is up
    assert report.result(ToyResult) == ToyResult(status, 0.25)
    if not up:
        assert report.first_failure is toy
        assert toy.detail == "HTTP 503 for /toy.txt"

    # The metrics: its check, its metric family (at the end), its probe errors.
    state = State()
    state.set_targets([target])
    exposition = Exposition(state, WITH_TOY)
    state.record(report)
    text = exposition.render().decode()
    value = "1.0" if up else "0.0"
    labels = 'location="default",server="toy-server"'
    assert f'jitsi_check_success{{check="toy",{labels}}} {value}' in text
    assert f"jitsi_toy_seconds{{{labels}}} 0.25\n" in text
    assert "# TYPE jitsi_toy_seconds gauge" in text
    assert [f.name for f in server_families(WITH_TOY)][-1] == "jitsi_toy_seconds"
    assert 'jitsi_monitor_probe_errors_total{check="toy",location="default"} 0' in text

    # The JSON view: its check, and its key, last.
    shown = report_dict(target, report, WITH_TOY)
    checks = {c["check"]: c for c in shown["checks"]}
    assert checks["toy"]["success"] is up
    assert list(shown)[-1] == "toy"
    assert shown["toy"] == {"status": status}
    # The table: its column.
    (column,) = TOY_FAMILY.columns
    assert column.cell(report) == str(status)

    # The dashboards: its row of panels where the server's dashboard puts the families' last.
    grid = Grid()
    lay_out(grid, WITH_TOY, SERVER_UID, "end")
    titles = [p["title"] for p in grid.panels]
    assert titles[-2:] == ["Toys", "Toy"]
    assert titles.index("Media path") < titles.index("Toys")


async def test_a_toy_family_is_skipped_with_why_when_web_fails(start_site: StartSite) -> None:
    site = await start_site(jitsi_app(index_status=500))
    _, report = await _probe(site.url)
    toy = report.check(TOY)
    assert toy is not None
    assert (toy.reason, toy.detail) == (Reason.SKIPPED, "not tried: web failed")
    assert report.result(ToyResult) is None


async def test_the_shipped_families_alone_know_no_toy(start_site: StartSite) -> None:
    site = await start_site(jitsi_app(routes={"/toy.txt": text_handler("toy")}))
    cfg = make_config(_config(site.url))
    runner = Runner(cfg)
    try:
        report = await runner.run_now(cfg.targets()[0])
    finally:
        await runner.close()
    assert TOY not in {r.check for r in report.checks}
    assert "toy" not in LADDER.requirements
    assert "jitsi_toy_seconds" not in {f.name for f in server_families()}


def test_a_family_holds_only_its_own_rows() -> None:
    with pytest.raises(ValueError, match="rows of another family"):
        dataclasses.replace(TOY_FAMILY, name="web")


def test_every_check_has_one_row_and_each_family_its_rows() -> None:
    assert [f.name for f in FAMILIES] == ["web", "signalling", "jwt", "media"]
    assert [row.check for row in LADDER] == [c for f in FAMILIES for c in f.checks()]
    assert {row.stage for row in LADDER} == {f.name for f in FAMILIES}
    # Families run in the order of their rows.
    order = [row.stage for row in LADDER]
    assert [f.name for f in FAMILIES] == list(dict.fromkeys(order))
    assert LADDER.always <= LADDER.verdict
    with pytest.raises(ValueError, match="declared twice"):
        ladder_of((*FAMILIES, FAMILIES[0]))
    with pytest.raises(ValueError, match="not a check name"):
        Check("Not A Name")


def test_an_unknown_require_word_is_refused_with_the_table_s_words() -> None:
    pools = "pools:\n  - name: p\n    servers: [toy-server]\n    require: [web, toy]\n"
    with pytest.raises(ConfigError) as caught:
        make_config(_config("https://meet.example.org/") + pools)
    (problem,) = caught.value.problems
    assert "pools[0].require[1]" in str(problem)
    assert "'toy' is not a requirement" in str(problem)
    assert "web, signalling, focus, muc, jwt, moderation" in str(problem)


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
        return make_report(LADDER, server="s", started_at=0.0, duration=1.0, checks=checks)

    web = [(c, Reason.OK) for c in LADDER.checks("web")]
    assert report(*web).up
    # A failed embed check describes fitness, not health.
    assert report(*web[:-1], (Check.EMBED, Reason.EMBED_LIMITED)).up
    assert not report(*web, (Check.SIGNALLING, Reason.TIMEOUT)).up
    # A ladder that did not run every always-run check is not up.
    assert not report(*web[1:]).up
