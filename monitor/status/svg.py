"""Inline SVG charts for the status pages: sparklines, latency charts, timelines, badges.

Every chart has a text alternative (``<title>`` and ``aria-label``); colours
come from CSS classes so that light and dark themes both apply. Text put
into a chart goes through ``monitor.escape.html``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Final

from monitor import escape

__all__ = ["PHASE_CLASSES", "badge", "latency_chart", "sparkline", "timeline"]

# The CSS class of each latency series (colours in layout.CSS).
PHASE_CLASSES: Final = {
    "connect": "s1",
    "tls": "s2",
    "first_byte": "s3",
    "ping": "s4",
}


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(
    values: Sequence[float | None], label: str, width: int = 120, height: int = 24
) -> str:
    """A line of ``values`` (gaps where None), scaled to its own maximum.

    Drawn in a box of one unit per value across and 100 up, in whole
    numbers (cheap to format: a page holds a hundred of these).
    """
    known = [v for v in values if v is not None]
    if not known:
        return f'<span class="muted">{escape.html(label)}</span>'
    scale = 90 / (max(known) or 1.0)
    runs: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{i},{95 - int(value * scale)}")
    lines = "".join(
        f'<polyline points="{" ".join(r)}"/>' if len(r) > 1 else _dot(r[0], 3) for r in runs if r
    )
    text = escape.html(label)
    return (
        f'<svg class="spark" viewBox="0 0 {max(1, len(values) - 1)} 100" width="{width}" '
        f'height="{height}" preserveAspectRatio="none" role="img" aria-label="{text}">'
        f"<title>{text}</title>{lines}</svg>"
    )


def _dot(point: str, r: float = 1.5) -> str:
    x, y = point.split(",")
    return f'<circle cx="{x}" cy="{y}" r="{r}"/>'


def latency_chart(
    series: Mapping[str, Sequence[tuple[float, float | None]]],
    since: float,
    until: float,
    label: str,
    width: int = 640,
    height: int = 160,
) -> str:
    """Lines of (time, seconds) per phase, in milliseconds, with a time axis."""
    known = [v for points in series.values() for _, v in points if v is not None]
    text = escape.html(label)
    if not known:
        return f'<p class="muted">{text}: no samples yet</p>'
    top = max(known) * 1.1 or 0.001
    pad_left, pad_bottom = 44, 16
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - 4
    span = max(1.0, until - since)
    base = 4 + plot_h
    parts = [
        f'<line class="axis" x1="{pad_left}" y1="4" x2="{pad_left}" y2="{base}"/>',
        f'<line class="axis" x1="{pad_left}" y1="{base}" x2="{width - 4}" y2="{base}"/>',
        f'<text x="{pad_left - 4}" y="12" text-anchor="end">{_n(top * 1000)} ms</text>',
        f'<text x="{pad_left - 4}" y="{4 + plot_h}" text-anchor="end">0</text>',
        f'<text x="{pad_left}" y="{height - 3}">{_clock(since)}</text>',
        f'<text x="{width - 4}" y="{height - 3}" text-anchor="end">{_clock(until)}</text>',
    ]
    for phase, points in series.items():
        coords = [
            f"{_n(pad_left + (at - since) / span * plot_w)},{_n(4 + plot_h - v / top * plot_h)}"
            for at, v in points
            if v is not None
        ]
        if not coords:
            continue
        css = PHASE_CLASSES.get(phase, "s1")
        shape = (
            f'<polyline class="{css}" points="{" ".join(coords)}"/>'
            if len(coords) > 1
            else _dot(coords[0]).replace("<circle", f'<circle class="{css}"')
        )
        parts.append(shape)
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{text}"><title>{text}</title>{"".join(parts)}</svg>'
    )


def _clock(at: float) -> str:
    return time.strftime("%d %b %H:%M UTC", time.gmtime(at))


# How bad each class of a strip is: a pixel holding several spans shows the worst.
_WORSE: Final = {"ok": 0, "skip": 1, "bad": 2, "none": 2}


def _per_pixel(
    spans: Sequence[tuple[float, float, str, str]], since: float, until: float, width: int
) -> list[tuple[float, float, str, str]]:
    """``spans`` merged to at most one rect per run of pixels of one class.

    Each whole pixel takes the worst class of the spans in it; runs of
    pixels of one class become one span, titled with the span's own title
    when it is one span, else with how many changes it holds.
    """
    scale = width / max(1.0, until - since)
    # Per pixel: (how bad, index of the first span, index of the last span, its worst span)
    cells: list[list[int] | None] = [None] * width
    for index, (start, end, css, _) in enumerate(spans):
        x0 = max(0.0, (start - since) * scale)
        x1 = min(float(width), (end - since) * scale)
        if x1 <= x0:
            continue
        rank = _WORSE.get(css, 1)
        for px in range(int(x0), min(width, math.ceil(x1))):
            cell = cells[px]
            if cell is None:
                cells[px] = [rank, index, index, index]
            else:
                cell[2] = index
                if rank > cell[0]:
                    cell[0], cell[3] = rank, index
    runs: list[tuple[int, int, str, int, int]] = []  # first px, end px, class, spans
    for px, cell in enumerate(cells):
        if cell is None:
            continue
        css = spans[cell[3]][2]
        if runs and runs[-1][1] == px and runs[-1][2] == css:
            prev = runs[-1]
            runs[-1] = (prev[0], px + 1, css, prev[3], cell[2])
        else:
            runs.append((px, px + 1, css, cell[1], cell[2]))
    out = []
    for x0, x1, css, first, last in runs:
        if first == last:
            title = spans[first][3]
        else:
            title = (
                f"{last - first + 1} changes from {_clock(spans[first][0])} "
                f"to {_clock(spans[last][1])}; the worst shown"
            )
        out.append((since + x0 / scale, since + x1 / scale, css, title))
    return out


def timeline(
    spans: Sequence[tuple[float, float, str, str]],
    since: float,
    until: float,
    label: str,
    width: int = 640,
    height: int = 14,
) -> str:
    """A strip of (start, end, css class, title) spans over ``since``..``until``.

    More spans than pixels across (a flapping check) are merged per pixel
    (see ``_per_pixel``): a strip holds at most ``width`` rects.
    """
    span = max(1.0, until - since)
    if len(spans) > width:
        spans = _per_pixel(spans, since, until, width)
    rects = []
    for start, end, css, title in spans:
        x0 = max(0.0, (start - since) / span * width)
        x1 = min(float(width), (end - since) / span * width)
        if x1 <= x0:
            continue
        rects.append(
            f'<rect class="{css}" x="{_n(x0)}" y="0" width="{_n(max(x1 - x0, 0.5))}" '
            f'height="{height}"><title>{escape.html(title)}</title></rect>'
        )
    text = escape.html(label)
    return (
        f'<svg class="strip" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{text}"><title>{text}</title>{"".join(rects)}</svg>'
    )


# Colours of a badge's right half (badges are embedded elsewhere: no CSS of ours).
_BADGE_COLOURS: Final = {"up": "#2e7d32", "down": "#c62828", "unknown": "#757575"}


def _text_width(text: str) -> int:
    return 12 + int(len(text) * 6.6)


def badge(name: str, verdict: str, value: str) -> str:
    """A two-part badge: ``name`` | ``value``, coloured by ``verdict``."""
    left, right = escape.html(name, 40), escape.html(value, 40)
    lw, rw = _text_width(escape.plain(name, 40)), _text_width(value[:40])
    colour = _BADGE_COLOURS.get(verdict, _BADGE_COLOURS["unknown"])
    total = lw + rw
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{left}: {right}"><title>{left}: {right}</title>'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{rw}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="6" y="14">{left}</text><text x="{lw + 6}" y="14">{right}</text></g></svg>'
    )
