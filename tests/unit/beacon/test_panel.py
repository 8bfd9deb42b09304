"""The pool page's users' panel: the users' view against the monitor's, per member."""

from __future__ import annotations

import re

from monitor.config.pages import StatusSettings
from monitor.status import Pages
from tests.support.beacons import address, beacons, body, probe_round, send, state

NOW = 1000.0


def rows(html: str) -> dict[str, list[str]]:
    table = html.split('<table class="users">', 1)[1].split("</table>", 1)[0]
    out = {}
    for row in re.findall(r"<tr data-server=\"([^\"]+)\">(.*?)</tr>", table):
        out[row[0]] = re.findall(r"<td>(.*?)</td>", row[1])
    return out


async def test_the_panel_shows_both_views_and_who_scored() -> None:
    s = state("users")
    b = beacons(s)
    probe_round(s, a_rtt=0.010, b_rtt=0.040)
    for prefix in range(5):
        for host in (1, 2):
            assert send(b, body({"a": 150, "b": 30}), address(prefix, host), NOW) == "ok"
    html = await Pages(s, StatusSettings(), None).pool("moodle", {}, now=NOW)
    assert html is not None
    assert "Users' view" in html
    assert rows(html) == {
        "a": ["a", "10.0 ms", "150.0 ms", "150.0 ms", "10", "5", "users"],
        "b": ["b", "40.0 ms", "30.0 ms", "30.0 ms", "10", "5", "users"],
    }


async def test_the_public_view_leaves_it_out() -> None:
    s = state("users")
    beacons(s)
    probe_round(s)
    pages = Pages(s, StatusSettings(public=True), None)
    html = await pages.pool("moodle", {}, now=NOW)
    assert html is not None
    assert "Users' view" not in html
