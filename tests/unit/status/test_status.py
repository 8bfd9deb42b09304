"""The status pages over HTTP: what they show, escaping of hostile texts, the
public view's omissions, filters and pages, badges, and pages without history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.checks import LADDER, make_report
from monitor.checks.web.probe import WebResult
from monitor.config.pages import StatusSettings
from monitor.decisions import Decisions
from monitor.domain import Target
from monitor.history import History, Limits, open_history, pool_record, report_record
from monitor.model import CertInfo, Check, CheckResult, ConfigFacts, Phase, Reason, ServerReport
from monitor.selector import PoolSettings
from monitor.server import make_app
from monitor.state import State
from monitor.status import Pages
from tests.support.hostile import HOSTILE, raw_free
from tests.support.sites import StartSite
from tests.support.status import get

EVIL = HOSTILE + ' <script>alert("x")</script><img src=x onerror=alert(1)> "quoted\''


def report(name: str, at: float, up: bool = True, detail: str = "") -> ServerReport:
    return make_report(
        LADDER,
        server=name,
        started_at=at - 0.2,
        finished_at=at,
        duration=0.2,
        checks=(
            CheckResult(Check.WEB, Reason.OK if up else Reason.HTTP_STATUS, detail),
            CheckResult(Check.CONFIGJS, Reason.OK if up else Reason.SKIPPED),
            CheckResult(Check.EXTERNAL_API, Reason.OK if up else Reason.SKIPPED),
            CheckResult(Check.EMBED, Reason.EMBED_LIMITED, detail),
        ),
        results=(
            WebResult(
                http_phases=(
                    Phase("connect", 0.01),
                    Phase("tls", 0.02),
                    Phase("processing", 0.03),
                ),
                cert=CertInfo(2_000_000_000.0, "TLSv1.3", subject=detail or "CN=x", issuer=detail),
                config=ConfigFacts(
                    domain=f"{detail}.{name}.example", websocket=f"wss://{name}.example/ws"
                ),
                embed_limit_seconds=300,
                connect_rtt=0.01,
            ),
        ),
    )


def target(name: str, labels: tuple[tuple[str, str], ...] = ()) -> Target:
    return Target(
        name=name,
        url=f"https://host-{name}.example/",
        kind="public",
        interval=60,
        timeout=10,
        labels=labels,
    )


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[History]:
    h = await asyncio.to_thread(open_history, tmp_path / "h.sqlite", Limits())
    assert h is not None
    yield h
    await h.close()


async def fleet(history: History | None, detail: str, now: float) -> State:
    """Three servers (one down with ``detail``), a pool that failed over, and history."""
    state = State(location="here")
    state.set_targets(
        [
            target("alpha", (("region", f"eu {detail}"),)),
            target("beta", (("region", "us"),)),
            target("secret", (("region", "eu"),)),
        ]
    )
    state.set_pools([PoolSettings("course", ("alpha", "beta", "secret"), require=("web",))])
    decisions = Decisions(
        state,
        notify=None if history is None else lambda d: history.add(pool_record(d)),
        logged=False,
    )
    for minute in range(30, 0, -1):
        at = now - minute * 60
        for name in ("alpha", "beta", "secret"):
            up = not (name == "alpha" and minute <= 10)
            made = state.record(report(name, at, up=up, detail="" if up else detail))
            if history is not None:
                history.add(report_record(state.reports[name]))
            decisions.take(made)
    if history is not None:
        await history.flush()
    return state


async def served(
    start_site: StartSite, state: State, settings: StatusSettings, history: History | None
) -> str:
    site = await start_site(make_app(state, pages=Pages(state, settings, history)))
    return site.url.rstrip("/")


PAGES = (
    "/",
    "/servers/alpha",
    "/servers/alpha?range=1h",
    "/pools/course",
    "/pools/course?range=1h",
)


async def test_pages_show_history_and_escape_what_servers_sent(
    start_site: StartSite, history: History
) -> None:
    import time

    now = time.time()
    state = await fleet(history, EVIL, now)
    base = await served(start_site, state, StatusSettings(), history)
    for path in PAGES:
        status, kind, text = await get(base, path)
        assert (status, kind.split(";")[0]) == (200, "text/html"), path
        assert "<script>alert" not in text, path
        assert "<img src=x" not in text, path
        assert "onerror=alert" not in text.replace("&lt;img src=x onerror=alert", ""), path
        assert raw_free(text, allow_newlines=True), path
    _, _, index = await get(base, "/")
    assert 'data-server="alpha"' in index
    assert "https://host-alpha.example/" in index
    assert "66.67%" in index  # alpha: down 10 of its 30 minutes
    assert "web: http_status" in index
    assert "since" in index
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in index  # the detail, escaped
    assert "\\x1b[2J" in index  # control characters shown as escapes
    assert "embed limited 5 min" in index
    assert index.count('class="spark"') == 3
    assert "3 server(s)" in index
    assert "1 down" in index

    _, _, page = await get(base, "/servers/alpha?range=1h")
    assert 'class="incident"' in page
    assert "still down" in page
    assert "web: http_status" in page
    assert "&lt;script&gt;" in page
    assert '<svg class="chart"' in page
    assert "TLSv1.3" in page
    _, _, pool = await get(base, "/pools/course")
    assert pool.count('class="event"') == 2  # initial, then the failover
    assert "ineligible" in pool
    assert "alpha" in pool
    assert "beta" in pool


async def test_the_public_view_shows_no_url_label_detail_or_private_server(
    start_site: StartSite, history: History
) -> None:
    import time

    now = time.time()
    state = await fleet(history, "DETAIL-MARK", now)
    settings = StatusSettings(public=True, private=["secret"])
    base = await served(start_site, state, settings, history)
    for path in (*PAGES, "/badge/alpha.svg", "/badge/pool/course.svg"):
        status, _, text = await get(base, path)
        assert status == 200, path
        for secret in ("host-", ".example", "DETAIL-MARK", "region", "secret", "wss:"):
            assert secret not in text, (path, secret)
    _, _, index = await get(base, "/")
    assert "web: http_status" in index
    assert "2 server(s)" in index
    # labels are not shown, so not filtered on either: the count would tell them
    for label in ("region%3Dus", "region%3Deu", "region%3Dnone"):
        _, _, filtered = await get(base, "/?label=" + label)
        assert "2 server(s)" in filtered, label
        assert "match" not in filtered, label
        assert 'data-server="alpha"' in filtered, label
        assert 'data-server="beta"' in filtered, label
    for path in ("/servers/secret", "/badge/secret.svg"):
        status, _, _ = await get(base, path)
        assert status == 404, path
    # the private view of the same monitor shows them
    private = await served(start_site, state, StatusSettings(), history)
    _, _, text = await get(private, "/servers/alpha")
    assert "DETAIL-MARK" in text
    assert "host-alpha.example" in text


async def test_filters_and_pages_with_many_servers(start_site: StartSite) -> None:
    state = State()
    names = [f"s{i:03d}" for i in range(250)]
    state.set_targets(
        [target(n, (("region", "eu" if i % 2 else "us"),)) for i, n in enumerate(names)]
    )
    state.set_pools([PoolSettings("p", tuple(names[:30]))])
    for i, name in enumerate(names):
        if i % 5:
            state.record(report(name, 1000.0, up=i % 5 != 1))
    base = await served(start_site, state, StatusSettings(page_size=100), None)

    async def rows(path: str) -> list[str]:
        status, _, text = await get(base, path)
        assert status == 200, path
        return [part.split('"', 1)[0] for part in text.split('<tr data-server="')[1:]]

    assert await rows("/") == names[:100]
    assert await rows("/?page=3") == names[200:]
    assert await rows("/?page=99") == names[200:]  # past the end: the last page
    assert await rows("/?page=0") == names[:100]  # before the first: the first page
    assert await rows("/?state=down") == [n for i, n in enumerate(names) if i % 5 == 1][:100]
    unknown = [n for i, n in enumerate(names) if not i % 5]
    assert await rows("/?state=unknown&page=2") == unknown  # one page of 50: page 2 is page 1
    assert await rows("/?pool=p") == names[:30]
    assert await rows("/?label=region%3Deu&pool=p") == names[1:30:2]
    assert await rows("/?pool=nope") == []
    _, _, text = await get(base, "/?page=2")
    assert 'href="?page=3"' in text
    assert "of 3" in text
    assert "History is off" in text


async def test_badges(start_site: StartSite, history: History) -> None:
    import time

    state = await fleet(history, "x", time.time())
    base = await served(start_site, state, StatusSettings(), history)
    status, kind, svg = await get(base, "/badge/beta.svg")
    assert status == 200
    assert kind.startswith("image/svg+xml")
    assert svg.startswith("<svg")
    assert "beta: up 100% (30 d)" in svg
    _, _, svg = await get(base, "/badge/alpha.svg")
    assert "alpha: down 66.67% (30 d)" in svg
    _, _, svg = await get(base, "/badge/pool/course.svg")
    assert "pool course: beta" in svg
    for path in ("/badge/nobody.svg", "/badge/pool/nope.svg", "/servers/nobody", "/pools/nope"):
        status, _, text = await get(base, path)
        assert (status, text[:3]) == (404, "no "), path


async def test_a_history_that_fails_to_read_leaves_the_pages_up(
    start_site: StartSite, history: History, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import time

    state = await fleet(history, "x", time.time())
    history._writer.db.execute("DROP TABLE buckets")  # what a damaged file does to a read
    base = await served(start_site, state, StatusSettings(), history)
    with caplog.at_level(logging.ERROR, "monitor.status"):
        for path in ("/", "/servers/alpha", "/badge/alpha.svg", "/pools/course"):
            status, _, _ = await get(base, path)
            assert status == 200, path
    assert "history: cannot read" in caplog.text
    assert 'data-server="alpha"' in (await get(base, "/"))[2]


def test_history_and_status_config(tmp_path: Path) -> None:
    from monitor.config import ConfigError, parse_config, parse_shard

    cfg = parse_config("servers: []\n", "s.yaml", base_dir=tmp_path)
    assert cfg.history_path() == tmp_path / "jitsi-monitor-history.sqlite"
    assert cfg.history_path(parse_shard("2/4")) == (
        tmp_path / "jitsi-monitor-history.shard-2-of-4.sqlite"
    )
    assert cfg.history.retention == 7 * 86400
    assert (cfg.status.public, cfg.status.page_size, cfg.status.refresh) == (False, 100, 60)
    cfg = parse_config(
        "servers: []\nhistory: {file: '', retention: 48h}\n"
        "status: {public: true, private: [a], refresh: 0}\n",
        "s.yaml",
    )
    assert cfg.history_path() is None
    assert cfg.history.retention == 2 * 86400
    assert cfg.status.private == ["a"]
    with pytest.raises(ConfigError) as info:
        parse_config(
            "servers: []\nhistory: {retention: 12h, max_rows: 5, keepevents: 1}\n"
            "status: {private: ['../x'], page_size: 5000, refresh: 5s}\n",
            "s.yaml",
        )
    found = "\n".join(str(p) for p in info.value.problems)
    for expected in (
        "s.yaml:2: history.retention: retention must be between 24h",
        "history.max_rows",
        "history.keepevents",
        "status.private: '../x' is not a server name",
        "status.page_size",
        "status.refresh: refresh must be 0 (off) or between 10s and 1h",
    ):
        assert expected in found, found


async def test_links_are_relative_and_work_under_a_sub_path(
    start_site: StartSite, history: History
) -> None:
    """Resolved as a browser does against the pages served under ``/status/``
    by a proxy, every link stays under it and leads to a page that answers."""
    import re
    import time
    from urllib.parse import urljoin, urlsplit

    state = await fleet(history, "x", time.time())
    base = await served(start_site, state, StatusSettings(page_size=10), history)
    proxied = "https://proxy.example/status"
    for path in ("/", "/servers/alpha", "/servers/alpha?range=1h", "/pools/course"):
        _, _, text = await get(base, path)
        links = re.findall(r'(?:href|action)="([^"]*)"', text)
        assert len(links) >= 3, path
        for link in links:
            if link.startswith("data:"):
                continue
            resolved = urlsplit(urljoin(proxied + path, link.replace("&amp;", "&")))
            assert resolved.path.startswith("/status/"), (path, link)
            local = resolved.path.removeprefix("/status") + (
                f"?{resolved.query}" if resolved.query else ""
            )
            status, _, _ = await get(base, local)
            assert status == 200, (path, link, local)


async def test_a_flapping_server_gives_a_bounded_page(
    start_site: StartSite, history: History
) -> None:
    """A week of a check that flips every minute: the strips are merged per pixel."""
    import time

    now = time.time()
    state = State()
    state.set_targets([target("flappy")])
    for minute in range(7 * 24 * 60, 0, -1):
        at = now - minute * 60
        state.record(report("flappy", at, up=bool(minute % 2)))
        history.add(report_record(state.reports["flappy"]))
    await history.flush()
    base = await served(start_site, state, StatusSettings(), history)
    status, _, page = await get(base, "/servers/flappy?range=7d")
    assert status == 200
    strips = page.split('<svg class="strip"')[1:]
    assert len(strips) == 4  # web, configjs, external_api, embed
    for strip in strips:
        assert strip.split("</svg>")[0].count("<rect") <= 640
    flipping = strips[0].split("</svg>")[0]
    assert 'class="bad"' in flipping  # a pixel holding both states shows the worse
    assert "changes from" in flipping
    assert len(page) < 400_000, len(page)
    assert "failing for 3d 11h" in page  # the time failing is still the whole sum
