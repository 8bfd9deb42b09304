"""Cause 1 and 2 of issue 13: server text is never markup, and never raw control characters.

Markup (``[/]``, ``[link=...]``), terminal escapes, a bare CR/LF and bidi
controls go through every output path: the ``check`` table, the log, the
JSON API, the status page, the metrics' label values.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import sys
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from monitor import escape
from monitor.checks import LADDER, make_report
from monitor.checks.web.probe import WebResult
from monitor.cli.check import _table
from monitor.ladder import Check
from monitor.model import CheckResult, ConfigFacts, Reason, ServerReport
from monitor.scheduler import _log_change
from monitor.server import make_app
from monitor.state import State
from tests.support.hostile import HOSTILE, raw_free
from tests.support.sites import StartSite, target


def hostile_report(name: str) -> ServerReport:
    now = time.time()
    return make_report(
        LADDER,
        server=name,
        started_at=now,
        finished_at=now,
        duration=0.1,
        checks=(
            CheckResult(Check.WEB, Reason.PROTOCOL_ERROR, HOSTILE),
            CheckResult(Check.CONFIGJS, Reason.SKIPPED, "not tried: web failed"),
        ),
        results=(WebResult(config=ConfigFacts(domain=HOSTILE, websocket=f"wss://x/{HOSTILE}")),),
    )


def test_plain_shows_every_control_character() -> None:
    shown = escape.plain(HOSTILE)
    assert raw_free(shown)
    assert "\\x1b[2J" in shown
    assert "\\x07" in shown
    assert "\\r\\n" in shown
    assert "\\u202e" in shown
    assert "\\u2066" in shown
    assert escape.plain("\x9b\x00\x7f") == "\\x9b\\x00\\x7f"
    assert escape.plain("déjà vu ✓") == "déjà vu ✓"  # printable text stays as it is
    assert escape.plain("x" * 10, limit=4) == "xxxx…"


def test_the_table_shows_markup_as_text() -> None:
    reports = [hostile_report("bad"), dataclasses.replace(hostile_report("other"), checks=())]
    targets = [
        target("http://127.0.0.1:1/", name="bad"),
        target("http://127.0.0.1:2/", name="other"),
    ]
    for terminal in (False, True):
        out = io.StringIO()
        console = Console(file=out, width=2000, force_terminal=terminal, emoji=False)
        console.print(_table(targets, reports))
        text = out.getvalue()
        assert "bad" in text
        assert "other" in text
        assert "[/] [link=https://evil.example/]click[/link] [bold red]x" in text
        assert "\x1b]8;" not in text  # no hyperlink was made
        assert "\\x1b[2J" in text
        assert "\\u202e" in text
        if not terminal:
            assert raw_free(text, allow_newlines=True)
        else:  # rich's own colours only: no clear-screen, no title, no bell
            assert "\x1b[2J" not in text
            assert "\x07" not in text
            assert "\u202e" not in text


def test_the_log_shows_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="monitor.scheduler"):
        _log_change("bad", None, hostile_report("bad"))
    (record,) = [r for r in caplog.records if r.name == "monitor.scheduler"]
    assert raw_free(record.getMessage())
    # serve's formatter shows every argument escaped, also those of other modules
    formatter = escape.LogFormatter("%(levelname)s %(message)s")
    line = formatter.format(
        logging.LogRecord("monitor.notify", logging.ERROR, __file__, 1, "got %s", (HOSTILE,), None)
    )
    assert raw_free(line)
    assert "forged line" in line
    made = logging.LogRecord("monitor", logging.INFO, __file__, 1, f"got {HOSTILE}", (), None)
    assert raw_free(formatter.format(made))
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        record = logging.LogRecord(
            "monitor", logging.ERROR, __file__, 1, "crash", (), sys.exc_info()
        )
    assert raw_free(formatter.format(record), allow_newlines=True)


async def test_api_page_and_metrics(start_site: StartSite) -> None:
    state = State(location="eu")
    state.set_targets([target("http://127.0.0.1:1/", name="bad")])
    state.record(hostile_report("bad"))
    site = await start_site(make_app(state))
    async with aiohttp.ClientSession() as session:
        async with session.get(site.url + "api/v1/servers") as resp:
            body = await resp.read()
        async with session.get(site.url) as resp:
            page = await resp.text()
        async with session.get(site.url + "metrics") as resp:
            metrics = await resp.text()
    # JSON stays JSON: all ASCII on the wire, the server's text back exactly when parsed
    assert body.isascii()
    server = json.loads(body)["servers"][0]
    assert server["first_failure"]["detail"] == HOSTILE
    assert server["config"]["domain"] == HOSTILE
    # the page: escaped for HTML, control characters shown
    assert raw_free(page, allow_newlines=True)
    assert "&lt;" not in HOSTILE
    assert "[link=https://evil.example/]" in page
    assert "\\x1b[2J" in page
    assert "\\u202e" in page
    # metrics: the domain label holds the text with its control characters shown
    assert raw_free(metrics.replace("\n", ""))
    (info,) = [
        s
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
        if s.name == "jitsi_server_info"
    ]
    assert info.labels["domain"] == escape.plain(HOSTILE)
