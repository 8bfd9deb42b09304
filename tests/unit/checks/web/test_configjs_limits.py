"""The sandbox inside the web ladder: deadlines, the cache, and its settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from monitor.checks.web.configjs import Limits, for_fleet, reader
from monitor.checks.web.probe import WebResult
from monitor.config import ConfigError
from monitor.model import Check, Reason, ServerReport
from monitor.runner import Runner
from tests.support.sites import StartSite, eventually, jitsi_app, make_config


class Probe:
    """Probes a URL once with the given settings; one runner (so one config.js
    reader, with its cache) per set of settings, as ``serve`` has one."""

    def __init__(self) -> None:
        self.runners: dict[tuple[str, str], Runner] = {}
        self.reader = reader()

    async def __call__(self, url: str, extra: str = "", timeout: str = "5s") -> ServerReport:
        cfg = make_config(
            f"{extra}\nservers:\n  - name: s\n    url: {url}\n    timeout: {timeout}\n"
            "    signalling: {enabled: false}\n"
        )
        runner = self.runners.get((extra, timeout))
        if runner is None:
            runner = self.runners[extra, timeout] = Runner(cfg)
        self.reader = runner.configjs
        return await runner.run_now(cfg.targets()[0])


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    probing = Probe()
    yield probing
    for runner in probing.runners.values():
        await runner.close()


def reasons(report: ServerReport) -> dict[str, str]:
    return {r.check.value: r.reason.value for r in report.checks}


async def test_the_deadline_stops_the_engine(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app("var config = {}; while (true) {}"))
    started = time.monotonic()
    # The ladder's deadline is far below the engine's 10 s limit, yet long
    # enough for the page and config.js to arrive on a loaded machine (at
    # 0.6 s the deadline could pass before the engine even started).
    report = await probe(site.url, "configjs: {time_limit: 10s}", timeout="2s")
    elapsed = time.monotonic() - started
    check = report.check(Check.CONFIGJS)
    assert check is not None
    assert check.reason is Reason.CONFIGJS_TIMEOUT, "the engine's reason, not the ladder's"
    assert "deadline" in check.detail
    assert elapsed < 10, "it waited for the engine's own time limit, not the ladder's deadline"
    # nothing keeps running after the ladder: no engine, no CPU burnt
    # the engine's own limit would end it 10 s after the start: it must be gone before
    left = 10 - (time.monotonic() - started) - 1
    await eventually(lambda: probe.reader.running == 0, timeout=left)
    cpu = time.process_time()
    await asyncio.sleep(0.3)
    assert time.process_time() - cpu < 0.15


async def test_the_time_limit_lets_the_ladder_go_on(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app("for (;;) {}"))
    report = await probe(site.url, "configjs: {time_limit: 100ms}")
    assert reasons(report) == {
        "web": "ok",
        "configjs": "configjs_timeout",
        "external_api": "ok",
        "embed": "skipped",
    }
    check = report.check(Check.CONFIGJS)
    assert check is not None
    assert check.detail == "config.js was still running after 100 ms; stopped"
    assert not report.up


@pytest.mark.parametrize(
    ("js", "reason"),
    [
        ("var config = {", "configjs_error"),
        ("var a = []; for (;;) a.push([a.length]);", "configjs_memory"),
    ],
)
async def test_reasons_through_the_ladder(
    start_site: StartSite, probe: Probe, js: str, reason: str
) -> None:
    site = await start_site(jitsi_app(js))
    report = await probe(site.url, "configjs: {memory_limit: 16MiB}")
    assert reasons(report)["configjs"] == reason
    assert reasons(report)["embed"] == "skipped"
    assert report.result(WebResult).config is None


async def test_an_unchanged_body_is_evaluated_once(start_site: StartSite, probe: Probe) -> None:
    body = "var config = {{websocket: 'wss://x.example/ws', n: {}}};"
    site = await start_site(jitsi_app(body.format(time.time_ns())))
    for _ in range(3):
        report = await probe(site.url)
        assert reasons(report)["configjs"] == "ok"
    stats = probe.reader.stats
    assert stats.evaluations == 1
    # the page URL is part of the key: location changes what the file gives
    await probe(site.url.replace("127.0.0.1", "localhost"))
    assert stats.evaluations == 2


async def test_a_hostile_body_is_not_rerun(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app(f"for (;;) {{}} // {time.time_ns()}"))
    await probe(site.url, "configjs: {time_limit: 50ms}")
    evaluations = probe.reader.stats.evaluations
    report = await probe(site.url, "configjs: {time_limit: 50ms}")
    assert reasons(report)["configjs"] == "configjs_timeout"
    assert probe.reader.stats.hits > 0
    assert probe.reader.stats.evaluations == evaluations, "the hostile body ran again"


async def test_tenants_evaluated_side_by_side(start_site: StartSite, probe: Probe) -> None:
    js = "var config = {websocket: 'wss://x/' + location.pathname.split('/')[1] + '/ws'};"
    site = await start_site(
        jitsi_app(js, routes={"/a/config.js": _same(js), "/b/config.js": _same(js)})
    )
    reports = await asyncio.gather(probe(site.url + "a/"), probe(site.url + "b/"))
    a, b = (report.result(WebResult) for report in reports)
    assert a is not None
    assert b is not None
    assert a.config is not None
    assert b.config is not None
    assert (a.config.websocket, b.config.websocket) == ("wss://x/a/ws", "wss://x/b/ws")


def _same(js: str) -> Callable[..., Awaitable[object]]:
    from tests.support.sites import text_handler

    return text_handler(js, content_type="application/javascript")


def test_settings_block() -> None:
    cfg = make_config("configjs:\n  time_limit: 500ms\n  memory_limit: 32MiB\n")
    assert cfg.configjs.limits() == Limits(time=0.5, memory=32 * 1024 * 1024)
    assert make_config("location: x").configjs.limits() == Limits(0.25, 64 * 1024 * 1024)
    assert make_config("configjs: {memory_limit: 8388608}").configjs.memory_limit == 8 << 20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("configjs:\n  time_limit: 1h\n", "test.yaml:2: configjs.time_limit: time_limit must be"),
        ("configjs:\n  memory_limit: 1KiB\n", "test.yaml:2: configjs.memory_limit: memory_limit"),
        ("configjs:\n  memory_limit: lots\n", "test.yaml:2: configjs.memory_limit: 'lots' is not"),
        ("configjs:\n  time_limt: 1s\n", "test.yaml:2: configjs.time_limt: unknown key"),
    ],
)
def test_settings_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(text)
    assert str(info.value).startswith(message), str(info.value)


def test_cache_is_sized_to_the_fleet() -> None:
    assert for_fleet(Limits(), 5000).cache_size == 5000
    assert for_fleet(Limits(), 3).cache_size == 1024


async def test_a_runner_holds_its_own_reader_with_the_config_s_limits() -> None:
    cfg = make_config("configjs: {time_limit: 100ms}\nservers: []\n")
    runner = Runner(cfg)
    try:
        assert runner.configjs is not reader(), "no process-wide reader is configured"
        assert runner.configjs.limits == cfg.configjs.limits()
        assert reader().limits == Limits(), "the default reader keeps the default limits"
    finally:
        await runner.close()
