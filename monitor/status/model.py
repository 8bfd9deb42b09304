"""View-models of the status pages: what each page shows, made from ``State``
(now) and history (before), with the public view's omissions applied here,
once, so that no renderer can show what it should not.

Filters and pages are worked out from ``State`` alone (cheap); history is
read only for the servers of the page shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from monitor.checks import FAMILIES
from monitor.config.pages import StatusSettings
from monitor.domain import Target
from monitor.model import ServerReport
from monitor.state import State
from monitor.views import verdict

__all__ = ["STATES", "Filters", "Row", "Tag", "filter_servers", "row", "visible"]

STATES: Final = ("up", "down", "unknown")
# Distinct label pairs offered as filters at most.
LABEL_CHOICES: Final = 50


@dataclass(frozen=True, slots=True)
class Filters:
    """What ``/`` was asked to show: ``?pool=&label=key=value&state=&page=``."""

    pool: str = ""
    label: str = ""
    state: str = ""
    page: int = 1

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        page = query.get("page", "1")
        state = query.get("state", "")
        return cls(
            pool=query.get("pool", "")[:64],
            label=query.get("label", "")[:200],
            state=state if state in STATES else "",
            # Page 0 is page 1; a page past the end is the last (``Pages.index``).
            page=max(1, int(page)) if page.isdigit() and len(page) < 7 else 1,
        )

    def public(self) -> Filters:
        """What the public view applies: labels are not shown there, so no
        filter on them either (the count of matches would tell them)."""
        return Filters(self.pool, "", self.state, self.page)

    def query(self, **change: object) -> str:
        """This filter's query string, with ``change`` applied."""
        values = {"pool": self.pool, "label": self.label, "state": self.state, "page": self.page}
        values.update(change)
        return urlencode({k: v for k, v in values.items() if v not in ("", 1)})


@dataclass(frozen=True, slots=True)
class Tag:
    """A small label: text, and whether it is good, bad or neither."""

    text: str
    css: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """One server on ``/`` (without its history; the page adds it)."""

    name: str
    url: str | None  # None in the public view
    labels: tuple[tuple[str, str], ...]
    verdict: str
    failing: str  # "check: reason", or ""
    detail: str  # the failure's detail ("" in the public view)
    tags: tuple[Tag, ...]


def visible(state: State, settings: StatusSettings) -> list[str]:
    """Server names the pages may show, sorted."""
    hidden = set(settings.private) if settings.public else set()
    return sorted(name for name in state.targets if name not in hidden)


verdict_of = verdict


def filter_servers(
    state: State, names: list[str], filters: Filters, verdicts: Mapping[str, str]
) -> list[str]:
    """``names`` that pass the filters (``verdicts``: each name's verdict now)."""
    out = names
    if filters.pool:
        pool = state.pools.get(filters.pool)
        members = set(pool.servers) if pool else set()
        out = [n for n in out if n in members]
    if filters.label and "=" in filters.label:
        key, _, value = filters.label.partition("=")
        out = [n for n in out if (key, value) in state.targets[n].labels]
    if filters.state:
        out = [n for n in out if verdicts[n] == filters.state]
    return out


def label_choices(state: State, names: list[str]) -> list[str]:
    """``key=value`` of the labels of ``names``, for the filter (at most ``LABEL_CHOICES``)."""
    seen: set[str] = set()
    for name in names:
        for key, value in state.targets[name].labels:
            seen.add(f"{key}={value}")
            if len(seen) >= LABEL_CHOICES:
                return sorted(seen)
    return sorted(seen)


def tags(report: ServerReport | None) -> tuple[Tag, ...]:
    """Each family's small labels (the embed verdict, the token verdicts)."""
    if report is None:
        return ()
    return tuple(
        Tag(text, kind)
        for family in FAMILIES
        if family.tags is not None
        for text, kind in family.tags(report)
    )


def row(target: Target, report: ServerReport | None, public: bool) -> Row:
    failure = report.first_failure if report else None
    return Row(
        name=target.name,
        url=None if public else target.url,
        labels=() if public else target.labels,
        verdict=verdict_of(report),
        failing="" if failure is None else f"{failure.check.value}: {failure.reason.value}",
        detail="" if failure is None or public else failure.detail,
        tags=tags(report),
    )
