"""``/``: every server (a page at a time) with its verdict, uptime, sparkline,
what fails now and since when, and each pool's choice and last change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from monitor import escape
from monitor.history import ServerSummary
from monitor.status.layout import ago, milliseconds, page, percent, stamp, verdict_tag
from monitor.status.model import STATES, Filters, Row
from monitor.status.svg import sparkline

__all__ = ["IndexView", "PoolLine", "render_index"]


@dataclass(frozen=True, slots=True)
class PoolLine:
    name: str
    chosen: str | None
    stale: bool
    changed_at: float | None
    reason: str | None
    # The pool of a Moodle site: the server Moodle uses now.
    moodle: str | None = None


@dataclass(frozen=True, slots=True)
class IndexView:
    title: str
    location: str
    rows: Sequence[Row]
    history: Mapping[str, ServerSummary]
    history_on: bool
    pools: Sequence[PoolLine]
    filters: Filters
    matching: int  # servers that pass the filters (all pages)
    total: int
    pages: int
    pool_names: Sequence[str]
    label_choices: Sequence[str]
    counts: Mapping[str, int]  # by verdict, over every visible server
    refresh: float
    now: float


def _h(text: object) -> str:
    return escape.html(text)


def _select(name: str, label: str, current: str, choices: Sequence[str]) -> str:
    options = ['<option value="">all</option>']
    for choice in choices:
        selected = " selected" if choice == current else ""
        options.append(f'<option value="{_h(choice)}"{selected}>{_h(choice)}</option>')
    return f'<label>{label}<select name="{name}">{"".join(options)}</select></label>'


def _server_cells(view: IndexView, row: Row) -> str:
    summary = view.history.get(row.name)
    link = f'<a href="servers/{quote(row.name, safe="")}">{_h(row.name)}</a>'
    url = f'<br><span class="muted">{_h(row.url)}</span>' if row.url else ""
    labels = "".join(f'<span class="tag">{_h(k)}={_h(v)}</span>' for k, v in row.labels)
    if summary is None:
        uptime = ['<td data-k="24 h">–</td>', '<td data-k="7 d">–</td>', '<td data-k="30 d">–</td>']
        spark = '<span class="muted">no history</span>'
    else:
        uptime = [
            f'<td data-k="24 h">{percent(summary.uptime_24h)}</td>',
            f'<td data-k="7 d">{percent(summary.uptime_7d)}</td>',
            f'<td data-k="30 d">{percent(summary.uptime_30d)}</td>',
        ]
        known = [v for v in summary.spark if v is not None]
        last = f"{milliseconds(known[-1])} (last 10 min)" if known else "no samples"
        spark = sparkline(summary.spark, f"latency, last 24 h: {last}")
        spark += f'<br><span class="muted">{last}</span>'
    failing = ""
    if row.failing:
        failing = _h(row.failing)
        if summary is not None and summary.down is not None:
            start = summary.down.start
            failing += (
                f'<br><span class="muted">since {stamp(start)} ({ago(start, view.now)})</span>'
            )
        if row.detail:
            failing += f'<br><span class="muted">{escape.html(row.detail, 160)}</span>'
    elif summary is not None and summary.last is not None and summary.last.end is not None:
        failing = (
            f'<span class="muted">last down {ago(summary.last.end, view.now)}: '
            f"{_h(summary.last.check)}: {_h(summary.last.reason)}</span>"
        )
    tags = "".join(f'<span class="tag {t.css}">{_h(t.text)}</span>' for t in row.tags)
    return (
        f'<tr data-server="{_h(row.name)}"><td>{link}{url}<br>{labels}</td>'
        f'<td data-k="verdict">{verdict_tag(row.verdict)}</td>{"".join(uptime)}'
        f'<td data-k="latency">{spark}</td><td data-k="failing">{failing}</td>'
        f'<td data-k="checks">{tags}</td></tr>'
    )


def _pools(view: IndexView) -> str:
    if not view.pools:
        return ""
    lines = []
    for pool in view.pools:
        link = f'<a href="pools/{quote(pool.name, safe="")}">{_h(pool.name)}</a>'
        if pool.chosen is None or pool.stale:
            chosen = verdict_tag("down") + " none eligible"
        else:
            chosen = f"{verdict_tag('up')} {_h(pool.chosen)}"
        if pool.moodle is not None:
            chosen += f'<br><span class="muted">Moodle uses: {_h(pool.moodle)}</span>'
        change = (
            f"{stamp(pool.changed_at)} ({ago(pool.changed_at, view.now)})"
            + (f": {_h(pool.reason)}" if pool.reason else "")
            if pool.changed_at
            else '<span class="muted">no change yet</span>'
        )
        lines.append(
            f'<tr data-pool="{_h(pool.name)}"><td>{link}</td><td>{chosen}</td>'
            f"<td>{change}</td></tr>"
        )
    return (
        '<h2>Pools</h2><div class="wrap"><table class="pools"><thead><tr><th>pool</th>'
        f"<th>choice now</th><th>last change</th></tr></thead><tbody>{''.join(lines)}"
        "</tbody></table></div>"
    )


def _pager(view: IndexView) -> str:
    if view.pages <= 1:
        return ""
    links = []
    current = view.filters.page
    for number in range(1, view.pages + 1):
        if number in (1, view.pages) or abs(number - current) <= 3:
            if number == current:
                links.append(f"<span>page {number}</span>")
            else:
                links.append(f'<a href="?{_h(view.filters.query(page=number))}">{number}</a>')
        elif links and links[-1] != "<span>…</span>":
            links.append("<span>…</span>")
    return f'<p class="pages">{"".join(links)} <span class="muted">of {view.pages}</span></p>'


def render_index(view: IndexView) -> str:
    counts = ", ".join(f"{view.counts.get(s, 0)} {s}" for s in STATES)
    filters = view.filters
    form = (
        '<form class="filters" method="get" action="./">'
        + (_select("pool", "pool", filters.pool, view.pool_names) if view.pool_names else "")
        + (
            _select("label", "label", filters.label, view.label_choices)
            if view.label_choices
            else ""
        )
        + _select("state", "state", filters.state, STATES)
        + "<button>show</button></form>"
    )
    note = (
        ""
        if view.history_on
        else '<p class="muted">History is off: uptime and charts appear once it is on.</p>'
    )
    rows = "".join(_server_cells(view, row) for row in view.rows)
    shown = (
        f"{view.matching} of {view.total} server(s) match"
        if view.matching != view.total
        else f"{view.total} server(s)"
    )
    body = (
        f"<p><strong>{_h(counts)}</strong> &middot; location {_h(view.location)}</p>"
        f'{_pools(view)}<h2>Servers</h2>{form}{note}<p class="muted">{shown}</p>'
        '<div class="wrap"><table class="servers"><thead><tr><th>server</th><th>verdict</th>'
        "<th>uptime 24 h</th><th>7 d</th><th>30 d</th><th>latency 24 h</th>"
        f"<th>failing now</th><th>embed, tokens</th></tr></thead><tbody>{rows}</tbody></table>"
        f"</div>{_pager(view)}"
    )
    return page(view.title, view.title, body, refresh=view.refresh)
