"""The pool page's panel: each member as the users see it, beside the monitor's view."""

from __future__ import annotations

from collections.abc import Sequence

from monitor import escape
from monitor.beacon.beacons import MemberView

__all__ = ["render_users"]


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f} ms"


def render_users(
    views: Sequence[MemberView], nearest: str, min_samples: int, min_prefixes: int
) -> str:
    """The panel's HTML: a table, one row per member (names escaped here)."""
    rows = "".join(
        f'<tr data-server="{escape.html(v.server)}"><td>{escape.html(v.server)}</td>'
        f"<td>{_ms(v.monitor)}</td><td>{_ms(v.users.p50)}</td><td>{_ms(v.users.p90)}</td>"
        f"<td>{v.users.samples}</td><td>{v.users.prefixes}</td>"
        f"<td>{'users' if nearest == 'users' and v.counts else 'monitor'}</td></tr>"
        for v in views
    )
    rule = (
        "This pool scores a member by the users' p50 once the window holds "
        f"{min_samples} beacons from {min_prefixes} prefixes, else by the monitor's round trip."
        if nearest == "users"
        else "This pool scores members by the monitor's round trip (nearest: monitor); "
        "the users' view is shown for comparison."
    )
    return (
        "<h2>Users' view</h2><p class=\"muted\">Round trips timed by the users' browsers "
        f"(/beacon.js) in the window. {rule}</p>"
        '<div class="wrap"><table class="users"><thead><tr><th>server</th>'
        "<th>monitor (smoothed)</th><th>users p50</th><th>users p90</th><th>beacons</th>"
        f"<th>prefixes</th><th>scored by</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
