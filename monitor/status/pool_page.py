"""``/pools/{name}``: the candidates now (eligibility, tier, score) and the
failover timeline (reason, detail, from, to)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from monitor import escape
from monitor.history import PoolEvent
from monitor.status.layout import RANGES, page, stamp, stamp_text, verdict_tag
from monitor.status.svg import timeline

__all__ = ["CandidateLine", "PoolView", "render_pool"]


@dataclass(frozen=True, slots=True)
class CandidateLine:
    server: str
    eligible: bool
    why: str  # "" in the public view
    tier: int
    score: float | None


@dataclass(frozen=True, slots=True)
class PoolView:
    title: str
    name: str
    chosen: str | None
    stale: bool
    candidates: Sequence[CandidateLine]
    events: Sequence[PoolEvent]  # newest first
    range: str
    since: float
    now: float
    public: bool
    history_on: bool
    refresh: float
    # The users' view (monitor.beacon.panel), HTML made there; "" when none.
    users: str = ""


def _h(text: object) -> str:
    return escape.html(text)


def _strip(view: PoolView) -> str:
    """The choice over the window: one colour per member, red for none eligible."""
    order = {c.server: i % 4 for i, c in enumerate(view.candidates)}
    spans = []
    events = sorted(view.events, key=lambda e: e.at)
    for event, following in zip(events, [*events[1:], None], strict=True):
        end = following.at if following is not None else view.now
        chosen = event.chosen
        css = "none" if chosen is None else f"c{order.get(chosen, 0)}"
        spans.append(
            (event.at, end, css, f"{chosen or 'none eligible'} from {stamp_text(event.at)}")
        )
    strip = timeline(spans, view.since, view.now, f"the pool's choice over the last {view.range}")
    key = "".join(
        f'<span class="c{i % 4}">&#9632; {_h(c.server)}</span>'
        for i, c in enumerate(view.candidates)
    )
    return f'{strip}<p class="key">{key}<span class="none">&#9632; none eligible</span></p>'


def render_pool(view: PoolView) -> str:
    if view.chosen is None or view.stale:
        head = f"<p>{verdict_tag('down')} no eligible server</p>"
    else:
        head = f"<p>{verdict_tag('up')} chosen now: <strong>{_h(view.chosen)}</strong></p>"
    rows = "".join(
        f'<tr data-server="{_h(c.server)}"><td>{_h(c.server)}</td>'
        f"<td>{'yes' if c.eligible else 'no'}"
        + (
            ""
            if c.eligible or not c.why
            else f'<br><span class="muted">{escape.html(c.why, 200)}</span>'
        )
        + f"</td><td>{c.tier}</td>"
        f"<td>{'–' if c.score is None else f'{c.score * 1000:.1f} ms'}</td></tr>"
        for c in view.candidates
    )
    candidates = (
        '<div class="wrap"><table class="candidates"><thead><tr><th>server</th><th>eligible</th>'
        "<th>tier</th><th>score (smoothed round trip)</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )
    if not view.history_on:
        events = '<p class="muted">History is off: the failover timeline appears once it is on.</p>'
    elif not view.events:
        events = f'<p class="muted">No change of choice in the last {_h(view.range)}.</p>'
    else:
        lines = "".join(
            f'<tr class="event" data-reason="{_h(e.reason)}"><td>{stamp(e.at)}</td>'
            f"<td>{_h(e.reason)}"
            + (
                ""
                if view.public
                else f'<br><span class="muted">{escape.html(e.detail, 200)}</span>'
            )
            + f"</td><td>{_h(e.previous or 'none')}</td>"
            f"<td>{_h(e.chosen or 'none eligible')}</td></tr>"
            for e in view.events
        )
        events = (
            f"{_strip(view)}"
            '<div class="wrap"><table class="failovers"><thead><tr><th>when</th><th>reason</th>'
            f"<th>from</th><th>to</th></tr></thead><tbody>{lines}</tbody></table></div>"
        )
    quoted = quote(view.name, safe="")
    ranges = " ".join(
        f"<strong>{r}</strong>" if r == view.range else f'<a href="?range={r}">{r}</a>'
        for r in RANGES
    )
    body = (
        f'{head}<p><a href="../badge/pool/{quoted}.svg">badge</a></p>'
        f"<h2>Candidates</h2>{candidates}{view.users}"
        f"<h2>Failover timeline</h2><p>{ranges}</p>{events}"
    )
    return page(
        f"pool {view.name} · {view.title}",
        f"pool {view.name}",
        body,
        refresh=view.refresh,
        root="../",
    )
