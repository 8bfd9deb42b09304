"""``/servers/{name}``: each check's timeline, a latency chart per phase,
incidents (reason, start, end, duration), and the certificate and config.js facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from monitor import escape
from monitor.history import CheckSpan, Incident, LatencyPoint, ServerSummary
from monitor.status.layout import RANGES, duration, page, percent, stamp, stamp_text, verdict_tag
from monitor.status.svg import PHASE_CLASSES, latency_chart, timeline

__all__ = ["ServerView", "render_server"]


_PHASE_NAMES = {
    "connect": "TCP connect",
    "tls": "TLS handshake",
    "first_byte": "first byte",
    "ping": "XMPP ping",
}


@dataclass(frozen=True, slots=True)
class ServerView:
    title: str
    name: str
    url: str | None  # None in the public view
    verdict: str
    checks_now: Sequence[tuple[str, str, str]]  # check, reason, detail ("" when public)
    range: str
    since: float
    now: float
    summary: ServerSummary | None
    spans: dict[str, list[CheckSpan]]
    latency: Sequence[LatencyPoint]
    incidents: Sequence[Incident]
    facts: Sequence[tuple[str, str]]
    public: bool
    history_on: bool
    refresh: float


def _h(text: object) -> str:
    return escape.html(text)


def _css(reason: str) -> str:
    return "ok" if reason == "ok" else "skip" if reason == "skipped" else "bad"


_VERDICTS = {"ok": "up", "skip": "unknown", "bad": "down"}


def _timelines(view: ServerView) -> str:
    if not view.spans:
        return '<p class="muted">No check history yet.</p>'
    rows = []
    order = [c for c, _, _ in view.checks_now] + sorted(
        set(view.spans) - {c for c, _, _ in view.checks_now}
    )
    for check in order:
        spans = view.spans.get(check)
        if not spans:
            continue
        bad = sum(s.end - s.start for s in spans if _css(s.reason) == "bad")
        parts = [
            (
                s.start,
                s.end,
                _css(s.reason),
                f"{check}: {s.reason}, {stamp_text(s.start)} to {stamp_text(s.end)}",
            )
            for s in spans
        ]
        strip = timeline(parts, view.since, view.now, f"{check} over the last {view.range}")
        summary = "ok throughout" if not bad else f"failing for {duration(bad)}"
        rows.append(
            f'<tr data-check="{_h(check)}"><td>{_h(check)}</td><td>{strip}</td>'
            f'<td class="muted">{summary}</td></tr>'
        )
    return (
        '<div class="wrap"><table class="timeline"><thead><tr><th>check</th>'
        f"<th>{_h(view.range)}</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _latency(view: ServerView) -> str:
    series = {phase: [(p.at, getattr(p, phase)) for p in view.latency] for phase in PHASE_CLASSES}
    chart = latency_chart(
        series, view.since, view.now, f"latency per phase over the last {view.range}"
    )
    key = "".join(
        f'<span class="{PHASE_CLASSES[phase]}">&#9632; {name}</span>'
        for phase, name in _PHASE_NAMES.items()
        if any(v is not None for _, v in series[phase])
    )
    latest = next((p for p in reversed(view.latency)), None)
    figures = ""
    if latest is not None:
        figures = ", ".join(
            f"{name} {getattr(latest, phase) * 1000:.1f} ms"
            for phase, name in _PHASE_NAMES.items()
            if getattr(latest, phase) is not None
        )
        figures = f'<p class="muted">latest: {figures}</p>'
    return f'<div class="latency">{chart}<p class="key">{key}</p>{figures}</div>'


def _incidents(view: ServerView) -> str:
    if not view.incidents:
        return f'<p class="muted">No incidents in the last {_h(view.range)}.</p>'
    rows = []
    for incident in view.incidents:
        end = stamp(incident.end) if incident.end is not None else "<strong>still down</strong>"
        detail = (
            ""
            if view.public
            else f'<br><span class="muted">{escape.html(incident.detail, 200)}</span>'
        )
        rows.append(
            f'<tr class="incident"><td>{_h(incident.check)}: {_h(incident.reason)}{detail}</td>'
            f"<td>{stamp(incident.start)}</td><td>{end}</td>"
            f"<td>{duration(incident.duration(view.now))}</td></tr>"
        )
    return (
        '<div class="wrap"><table class="incidents"><thead><tr><th>reason</th><th>start</th>'
        f"<th>end</th><th>duration</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_server(view: ServerView) -> str:
    quoted = quote(view.name, safe="")
    ranges = " ".join(
        f"<strong>{r}</strong>" if r == view.range else f'<a href="?range={r}">{r}</a>'
        for r in RANGES
    )
    head = f"<p>{verdict_tag(view.verdict)}"
    if view.url:
        head += f' &middot; <span class="muted">{_h(view.url)}</span>'
    if view.summary is not None:
        head += (
            f" &middot; uptime 24 h {percent(view.summary.uptime_24h)}, 7 d "
            f"{percent(view.summary.uptime_7d)}, 30 d {percent(view.summary.uptime_30d)}"
        )
    head += f' &middot; <a href="../badge/{quoted}.svg">badge</a></p>'
    now_rows = "".join(
        f"<tr><td>{_h(check)}</td><td>{verdict_tag(_VERDICTS.get(_css(reason), 'down'))} "
        f'{_h(reason)}</td><td class="muted">{escape.html(detail, 300)}</td></tr>'
        for check, reason, detail in view.checks_now
    )
    checks = (
        '<div class="wrap"><table class="checks"><thead><tr><th>check</th><th>now</th>'
        f"<th>detail</th></tr></thead><tbody>{now_rows}</tbody></table></div>"
        if now_rows
        else '<p class="muted">Not probed yet.</p>'
    )
    facts = "".join(f"<dt>{_h(k)}</dt><dd>{_h(v)}</dd>" for k, v in view.facts)
    history = (
        f"<h2>Checks over the last {_h(view.range)}</h2><p>{ranges}</p>{_timelines(view)}"
        f"<h2>Latency</h2>{_latency(view)}<h2>Incidents</h2>{_incidents(view)}"
        if view.history_on
        else '<p class="muted">History is off: timelines and charts appear once it is on.</p>'
    )
    body = (
        f"{head}<h2>Checks now</h2>{checks}{history}"
        f'<h2>Certificate and config.js</h2><dl class="facts">{facts}</dl>'
    )
    return page(f"{view.name} · {view.title}", view.name, body, refresh=view.refresh, root="../")
