"""What a check family is: the one interface every family folder fills in.

A family (web, signalling, jwt, media, and whatever comes next) is a folder
under ``monitor/checks/`` whose ``family.py`` builds one ``Family``: its
ladder rows, which of them a server runs (``wanted``), what stops them
(``blocked``), the probe that runs them (``run``), its metric families and
their lines, its parts of the JSON view, of the CLI table and of the status
page, and its dashboard panels. ``monitor.checks.FAMILIES`` lists them in
ladder order; the runner, the exposition, the views and the dashboard
generator loop over that tuple, so a new family is a new folder plus one
line there.

Where a family's part goes in an output made of several families' parts
(the metric families of ``/metrics``, the keys of a server's JSON) is its
``Slot``: the parts of ``steps`` come right after the ladder's own, in
family order, then those of ``facts``, then the ladder's closing ones, then
those of ``end``. The slots keep those outputs exactly as they were before
the families had folders; a new family puts its parts at the ``end``.

On a dashboard a family gives whole rows at a slot (``PanelRow``), panels
inside a row the generator lays out, at a named ``Place`` (``Panels``), and
columns of the overview's fleet table at a slot (``FleetColumn``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from monitor.checks.run import LadderRun
from monitor.domain import Target
from monitor.grafana import Grid
from monitor.ladder import Check, CheckSpec
from monitor.model import CheckResult, ServerReport
from monitor.promtext import MetricFamily

__all__ = [
    "Column",
    "DashboardPart",
    "Family",
    "FleetColumn",
    "JsonPart",
    "Labels",
    "PanelRow",
    "Panels",
    "Place",
    "Placed",
    "Slot",
    "fleet_columns",
    "lay_out",
    "place",
]

Slot = Literal["steps", "facts", "end"]


@dataclass(frozen=True, slots=True)
class Labels:
    """A server's identifying labels, escaped once for every family's lines."""

    location: str  # escaped
    server: str  # escaped

    @property
    def both(self) -> str:
        """``location="…",server="…"``, the labels every server series starts with."""
        return f'location="{self.location}",server="{self.server}"'


@dataclass(frozen=True, slots=True)
class JsonPart:
    """Keys a family adds to a server's JSON view (``check --json``, ``/api/v1``)."""

    slot: Slot
    keys: Callable[[ServerReport], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Column:
    """A column a family adds to the table of ``jitsi-monitor check``."""

    slot: Slot
    title: str
    # The cell, in rich markup; every value that came from a server escaped.
    cell: Callable[[ServerReport], str]
    justify: Literal["left", "right"] = "left"


@dataclass(frozen=True, slots=True)
class Placed:
    """A Grafana panel (``monitor.grafana``) and its size on the 24-column grid."""

    panel: dict[str, Any]
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class PanelRow:
    """A row of panels a family adds to a dashboard, at its slot."""

    slot: Slot
    title: str
    panels: tuple[Placed, ...]
    collapsed: bool = False


# Where, inside a row the generator lays out itself, a family's panels go
# (``Panels``): the server dashboard's summary ("now", after the verdict),
# its ladder row over time ("phases") and in the last ladder ("phases.last"),
# and the overview's probe timing row ("timing").
Place = Literal["now", "phases", "phases.last", "timing"]


@dataclass(frozen=True, slots=True)
class Panels:
    """Panels a family adds inside one of the generator's rows, at a ``Place``."""

    place: Place
    panels: tuple[Placed, ...]


@dataclass(frozen=True, slots=True)
class FleetColumn:
    """A column a family adds to the overview's fleet table, at its slot."""

    slot: Slot
    title: str
    expr: str  # one value per server (``monitor.grafana.per_server``)
    config: dict[str, Any]  # the column's field config (unit, mappings, cell colours)


# What a family adds to a dashboard: whole rows, panels inside the generator's
# rows, columns of the fleet table.
DashboardPart = PanelRow | Panels | FleetColumn


@dataclass(frozen=True, slots=True)
class Family:
    """One check family, everything about it in one value."""

    name: str
    # Its rows of the ladder table, in ladder order (each with ``stage=name``).
    rows: tuple[CheckSpec, ...]
    # Of its checks, those ``target`` runs (none: the family is off for it).
    wanted: Callable[[Target], tuple[Check, ...]]
    # Why it cannot run now (a failed check's name), or None to run it.
    blocked: Callable[[LadderRun], str | None]
    # Runs its probe for the wanted checks, returning a result for each, and
    # leaves what else it found in ``run.results[name]``.
    run: Callable[[LadderRun, tuple[Check, ...]], Awaitable[tuple[CheckResult, ...]]]
    # Before any family runs, what it hands the earlier families' probes
    # (``LadderRun.login``); called when it has checks to run this round.
    prepare: Callable[[LadderRun], None] | None = None
    # Its metric families (per server), with where they go in ``/metrics``.
    metrics: tuple[tuple[Slot, MetricFamily], ...] = ()
    # Its lines for one report, by metric family name (only its own families).
    lines: Callable[[ServerReport, Labels], Mapping[str, str]] | None = None
    # Its parts of a server's JSON view.
    json: tuple[JsonPart, ...] = ()
    # Its columns of the ``check`` table.
    columns: tuple[Column, ...] = ()
    # Its small labels on the status pages: (text, "ok" or "bad").
    tags: Callable[[ServerReport], tuple[tuple[str, str], ...]] | None = None
    # Its facts on a server's status page: (name, value), given the report,
    # whether the page is the public one (no names, no URLs) and the time.
    page_facts: Callable[[ServerReport, bool, float], list[tuple[str, str]]] | None = None
    # Its parts of the Grafana dashboard of a uid (``monitor.grafana``): rows,
    # which the generator (``scripts/dashboards.py``) lays out by slot, panels
    # at a place in the generator's rows, columns of the fleet table.
    panels: Callable[[str], tuple[DashboardPart, ...]] | None = None
    # The pydantic model of its block in ``servers.yaml``, when it has one
    # (``monitor.config`` validates it and resolves it into the domain).
    settings: type[Any] | None = None

    def __post_init__(self) -> None:
        stray = [r.check.value for r in self.rows if r.stage != self.name]
        if stray:
            raise ValueError(f"family {self.name!r}: rows of another family: {stray}")

    def checks(self) -> tuple[Check, ...]:
        """Its checks, in ladder order."""
        return tuple(r.check for r in self.rows)


def _parts(families: tuple[Family, ...], uid: str) -> list[DashboardPart]:
    return [p for f in families if f.panels is not None for p in f.panels(uid)]


def lay_out(grid: Grid, families: tuple[Family, ...], uid: str, slot: Slot) -> None:
    """Add to ``grid`` the panel rows ``families`` give dashboard ``uid`` at ``slot``."""
    for row in _parts(families, uid):
        if isinstance(row, PanelRow) and row.slot == slot:
            grid.row(row.title, collapsed=row.collapsed)
            for placed in row.panels:
                grid.add(placed.panel, w=placed.w, h=placed.h)


def place(grid: Grid, families: tuple[Family, ...], uid: str, where: Place) -> None:
    """Add to ``grid``, in the row it is in, the panels ``families`` put at ``where``."""
    for part in _parts(families, uid):
        if isinstance(part, Panels) and part.place == where:
            for placed in part.panels:
                grid.add(placed.panel, w=placed.w, h=placed.h)


def fleet_columns(families: tuple[Family, ...], uid: str, slot: Slot) -> list[FleetColumn]:
    """The fleet-table columns ``families`` add at ``slot``, in family order."""
    return [c for c in _parts(families, uid) if isinstance(c, FleetColumn) and c.slot == slot]
