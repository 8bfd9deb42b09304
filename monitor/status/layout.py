"""The frame every status page shares: head, styles (light and dark), the refresh
script, and the small formatters (times, durations, percentages).

The pages work without JavaScript; the script only reloads the page every
``refresh`` seconds while it is visible.
"""

from __future__ import annotations

import time
from typing import Final

from monitor import __version__, escape

__all__ = [
    "CSS",
    "RANGES",
    "ago",
    "duration",
    "milliseconds",
    "page",
    "percent",
    "stamp",
    "stamp_text",
    "verdict_tag",
]

CSS: Final = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1b1b;--muted:#666;--line:#ddd;--card:#f6f6f6;
--up:#1b7a2f;--down:#b3261e;--unknown:#666;--warn:#8a5a00;--s1:#1565c0;--s2:#6a1b9a;
--s3:#e65100;--s4:#00838f}
@media (prefers-color-scheme:dark){:root{--bg:#121212;--fg:#e8e8e8;--muted:#a0a0a0;
--line:#333;--card:#1e1e1e;--up:#66bb6a;--down:#ef5350;--unknown:#9e9e9e;--warn:#ffb74d;
--s1:#64b5f6;--s2:#ce93d8;--s3:#ffb74d;--s4:#4dd0e1}}
*{box-sizing:border-box}
body{margin:0;padding:0 1rem 2rem;font:15px/1.4 system-ui,sans-serif;background:var(--bg);
color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline;
border-bottom:1px solid var(--line);margin-bottom:1rem}
header h1{font-size:1.3rem;margin:.6rem 0}
a{color:var(--s1)}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85rem}
.muted{color:var(--muted)}
.v{font-weight:600;white-space:nowrap}
.v.up{color:var(--up)} .v.down{color:var(--down)} .v.unknown{color:var(--unknown)}
.v.up::before{content:"\\25CF  "} .v.down::before{content:"\\25B2  "}
.v.unknown::before{content:"\\25CB  "}
.tag{display:inline-block;font-size:.75rem;padding:0 .4rem;margin:0 .2rem .2rem 0;
border:1px solid var(--line);border-radius:.6rem;white-space:nowrap}
.tag.bad{border-color:var(--down);color:var(--down)} .tag.ok{border-color:var(--up);color:var(--up)}
svg.spark{stroke:var(--s1);fill:none;stroke-width:1.2}
svg.spark polyline{vector-effect:non-scaling-stroke}
svg.spark circle{fill:var(--s1)}
svg.chart{width:100%;max-width:960px;height:auto;fill:none;stroke-width:1.4}
svg.chart text{fill:var(--muted);stroke:none;font-size:10px}
svg.chart .axis{stroke:var(--line)}
.s1{stroke:var(--s1)} .s2{stroke:var(--s2)} .s3{stroke:var(--s3)} .s4{stroke:var(--s4)}
circle.s1{fill:var(--s1)} circle.s2{fill:var(--s2)} circle.s3{fill:var(--s3)}
circle.s4{fill:var(--s4)}
.key span{margin-right:1rem} .key .s1{color:var(--s1)} .key .s2{color:var(--s2)}
.key .s3{color:var(--s3)} .key .s4{color:var(--s4)}
.key .c0{color:var(--s1)} .key .c1{color:var(--s2)} .key .c2{color:var(--s3)}
.key .c3{color:var(--s4)} .key .none{color:var(--down)}
svg.strip{width:100%;height:14px;background:var(--card)}
svg.strip .ok{fill:var(--up)} svg.strip .bad{fill:var(--down)} svg.strip .skip{fill:var(--unknown)}
svg.strip .c0{fill:var(--s1)} svg.strip .c1{fill:var(--s2)} svg.strip .c2{fill:var(--s3)}
svg.strip .c3{fill:var(--s4)} svg.strip .none{fill:var(--down)}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:.5rem 0}
form.filters label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted)}
select,button{font:inherit;padding:.2rem .4rem;background:var(--card);color:var(--fg);
border:1px solid var(--line);border-radius:4px}
.pages a,.pages span{margin-right:.6rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.facts dt{color:var(--muted)} dl.facts dd{margin:0;overflow-wrap:anywhere}
.wrap{overflow-x:auto}
@media (max-width:700px){
 table.servers thead{display:none}
 table.servers tr{display:block;border-bottom:1px solid var(--line);padding:.4rem 0}
 table.servers td{display:block;border:0;padding:.1rem 0}
 table.servers td[data-k]::before{content:attr(data-k) ": ";color:var(--muted);font-size:.8rem}
 table.servers td[data-k]:empty{display:none}
}
"""

# The windows a server's or a pool's page can show (``?range=``).
RANGES: Final = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}

# Reloads the page while it is shown (no reload for a hidden tab).
_REFRESH: Final = (
    "<script>setInterval(function(){if(!document.hidden){location.reload()}},{ms});</script>"
)


def page(
    title: str, heading: str, body: str, *, refresh: float, nav: str = "", root: str = "./"
) -> str:
    """A whole HTML document; ``title``, ``heading`` are escaped here, ``body`` is HTML.

    Links are relative (``root``: the way back to ``/`` from this page,
    ``./`` or ``../``), so that the pages work behind a proxy under a sub-path.
    """
    script = _REFRESH.replace("{ms}", str(int(refresh * 1000))) if refresh > 0 else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No favicon request (a 404 would be a console error in every test).
        '<link rel="icon" href="data:,">'
        f"<title>{escape.html(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{escape.html(heading)}</h1><nav><a href="{root}">all servers</a>{nav}</nav>'
        f'<span class="muted">jitsi-monitor {escape.html(__version__)} &middot; '
        f"{stamp(time.time())}</span></header>"
        f"<main>{body}</main>{script}</body></html>\n"
    )


def stamp(at: float | None) -> str:
    """``2026-11-30 08:43:10 UTC``, in a ``<time>`` element."""
    if at is None:
        return ""
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    return f'<time datetime="{iso}">{text}</time>'


def stamp_text(at: float) -> str:
    """``2026-11-30 08:43:10 UTC`` (for chart titles)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def duration(seconds: float) -> str:
    """``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def ago(at: float | None, now: float) -> str:
    return "" if at is None else f"{duration(now - at)} ago"


def milliseconds(seconds: float) -> str:
    """``0.4 ms``, ``22 ms``."""
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def percent(ratio: float | None) -> str:
    """``99.95%``; ``100%``; an en dash when there is no sample."""
    if ratio is None:
        return "–"
    if ratio >= 1:
        return "100%"
    return f"{min(ratio * 100, 99.99):.2f}%"


def verdict_tag(verdict: str) -> str:
    """The verdict in words, coloured by class (never colour alone)."""
    return f'<span class="v {verdict}">{verdict}</span>'
