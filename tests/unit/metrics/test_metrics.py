"""The collector renders State: labels, values, and no leftovers."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import resource
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from monitor.checks import LADDER, make_report
from monitor.checks.web.probe import WebResult
from monitor.domain import Target
from monitor.metrics import Exposition
from monitor.model import Check, CheckResult, ConfigFacts, Reason
from monitor.server import make_app
from monitor.server.app import GC_HOLD
from monitor.state import EWMA_ALPHA, State
from tests.support.metrics import report, targets


def samples(state: State) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = Exposition(state).render()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted(labels.items())))


def test_values_follow_the_latest_report() -> None:
    state = State(location="eu")
    state.set_targets(targets("a", "b"))
    state.record(report("a"))
    state.record(report("b", up=False))
    got = samples(state)
    assert got[key("jitsi_server_up", server="a", location="eu")] == 1
    assert got[key("jitsi_server_up", server="b", location="eu")] == 0
    assert got[key("jitsi_check_success", server="b", location="eu", check="web")] == 0
    assert (
        got[
            key(
                "jitsi_check_reason_info",
                server="b",
                location="eu",
                check="web",
                reason="http_status",
            )
        ]
        == 1
    )
    assert got[key("jitsi_http_duration_seconds", server="a", location="eu", phase="tls")] == 0.02
    assert got[key("jitsi_ssl_earliest_cert_expiry", server="a", location="eu")] == 2e9
    assert got[key("jitsi_embed_limit_seconds", server="a", location="eu")] == 300
    assert got[key("jitsi_http_status_code", server="b", location="eu")] == 502
    assert got[key("jitsi_last_probe_timestamp_seconds", server="a", location="eu")] == 1001.5
    assert got[key("jitsi_tls_version_info", server="a", location="eu", version="TLSv1.3")] == 1
    info = key(
        "jitsi_server_info",
        server="a",
        location="eu",
        kind="public",
        domain="a.example",
        url="https://a.example/",
    )
    assert got[info] == 1


def test_unprobed_server_has_only_its_config() -> None:
    state = State()
    state.set_targets(targets("new"))
    names = {name for name, labels in samples(state) if ("server", "new") in labels}
    assert names == {"jitsi_server_info", "jitsi_probe_interval_seconds"}


def test_removed_server_leaves_no_series() -> None:
    state = State()
    state.set_targets(targets("a", "b"))
    state.record(report("a"))
    state.record(report("b"))
    state.set_targets(targets("a"))
    state.record(report("b"))  # a ladder that finished after the removal
    assert not [k for k in samples(state) if ("server", "b") in k[1]]
    assert [k for k in samples(state) if ("server", "a") in k[1]]


def test_rtt_is_smoothed() -> None:
    state = State()
    state.set_targets(targets("a"))
    state.record(report("a", connect=0.010))
    state.record(report("a", connect=0.110))
    got = samples(state)[
        key("jitsi_rtt_seconds", server="a", location="default", method="tcp_connect")
    ]
    assert abs(got - (0.010 + EWMA_ALPHA * 0.100)) < 1e-9


def test_internal_errors_are_counted() -> None:
    state = State()
    state.set_targets(targets("a"))
    broken = make_report(
        LADDER,
        server="a",
        started_at=1,
        finished_at=2,
        duration=1,
        checks=(CheckResult(Check.WEB, Reason.INTERNAL_ERROR, "crash"),),
    )
    state.record(broken)
    state.record(broken)
    got = samples(state)
    assert got[key("jitsi_monitor_probe_errors_total", check="web", location="default")] == 2
    assert got[key("jitsi_monitor_probe_errors_total", check="configjs", location="default")] == 0


def test_custom_labels_go_on_info() -> None:
    state = State()
    t = Target(
        name="a", url="https://a/", kind="public", interval=60, timeout=10, labels=(("team", "x"),)
    )
    state.set_targets([t, *targets("b")])
    info = {
        dict(labels)["server"]: dict(labels)
        for name, labels in samples(state)
        if name == "jitsi_server_info"
    }
    assert info["a"]["team"] == "x"
    assert info["b"].get("team", "") == "", "an empty label is an absent label to Prometheus"


def test_a_damaged_state_file_is_survived(tmp_path: Path) -> None:
    from monitor.selector import PoolSettings
    from monitor.state import load_state, save_state

    state = State()
    state.set_targets(targets("a", "b"))
    state.set_pools([PoolSettings(name="p", servers=("a", "b"), hold_down=60.0)])
    path = tmp_path / "state.json"
    for text in (
        "not json",
        "[]",
        '{"version": 1, "pools": [1], "rtt_tcp_connect": [2]}',
        '{"version": 1, "pools": {"p": {"current": "a", "hold_until": 1e999}}}',
        '{"version": 1, "pools": {"p": {"current": "zz", "stale": "false", "failovers": 3}}}',
        '{"version": 99}',
    ):
        path.write_text(text)
        load_state(state, path)  # never raises
        assert state.pool_states["p"].hold_until < 10**12
    state.record(report("a"))
    save_state(state, path)
    fresh = State()
    fresh.set_targets(targets("a", "b"))
    fresh.set_pools([PoolSettings(name="p", servers=("a", "b"), hold_down=60.0)])
    assert load_state(fresh, path) is None
    assert fresh.rtt_tcp_connect == state.rtt_tcp_connect


def om_samples(state: State) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = Exposition(state).render(openmetrics=True).decode()
    assert text.endswith("# EOF\n")
    out = {}
    for family in openmetrics_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_openmetrics_has_the_same_samples() -> None:
    state = State(location="eu")
    state.set_targets(targets("a", "b"))
    state.record(report("a"))
    om, text = om_samples(state), samples(state)
    assert om.keys() == text.keys()
    # The monitor's own process_* and python_* move between two renders.
    assert {k: v for k, v in om.items() if k[0].startswith("jitsi_")} == {
        k: v for k, v in text.items() if k[0].startswith("jitsi_")
    }


def test_hostile_values_are_escaped() -> None:
    state = State(location='eu "west"')
    state.set_targets(targets("a"))
    hostile = 'x"} 1\njitsi_server_up{server="evil'
    base = report("a")
    web = dataclasses.replace(
        base.result(WebResult), config=ConfigFacts(domain=hostile + "\\ \udc00")
    )
    state.record(dataclasses.replace(base, results={**base.results, "web": web}))
    got = samples(state)
    info = next(labels for name, labels in got if name == "jitsi_server_info")
    # control characters (and a lone surrogate, which cannot be sent) are shown as escapes
    assert dict(info)["domain"] == hostile.replace("\n", "\\n") + "\\ \\udc00"
    assert dict(info)["location"] == 'eu "west"'
    assert {dict(labels)["server"] for _, labels in got if "server" in dict(labels)} == {"a"}


def test_a_changed_config_changes_the_kept_lines() -> None:
    state = State()
    state.set_targets(targets("a"))
    exposition = Exposition(state)
    state.record(report("a"))
    assert b'kind="public"' in exposition.render()
    changed = dataclasses.replace(state.targets["a"], kind="jaas", labels=(("team", "x"),))
    state.set_targets([changed])
    body = exposition.render()
    assert b'kind="jaas"' in body
    assert b'team="x"' in body
    state.set_targets([])
    assert b'server="a"' not in exposition.render()


async def test_metrics_is_streamed_whole_and_head_has_no_body() -> None:
    state = State(location="eu")
    state.set_targets(targets(*(f"s{i}" for i in range(3000))))
    for i in range(3000):
        state.record(report(f"s{i}"))
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        # one kept-alive connection: a HEAD that sent a body would break the GET after it
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            # identity: Content-Length is then the text's length (a gzip answer: tests/test_gzip.py)
            identity = {"Accept-Encoding": "identity"}
            async with session.head(url, headers=identity) as resp:
                assert resp.status == 200
                length = int(resp.headers["Content-Length"])
                assert await resp.read() == b""
            async with session.get(url, headers=identity) as resp:
                sent = int(resp.headers["Content-Length"])
                body = await resp.read()
        # The process_* and python_* series at the end change between two
        # answers (CPU seconds, collections); the servers' part does not.
        ours, _, vitals = body.partition(b"# HELP process_")
        assert len(body) == sent
        assert abs(sent - length) < 200
        assert ours == Exposition(state).render().partition(b"# HELP process_")[0]
        assert b"process_open_fds " in vitals
        assert body.count(b"jitsi_server_up{") == 3000
    finally:
        await runner.cleanup()


async def test_metrics_shows_the_monitors_own_vital_signs() -> None:
    """process_* and python_* as every exporter has them, in both formats; not on /probe."""
    state = State(location="eu")
    state.set_targets(targets("a"))
    state.record(report("a"))
    exposition = Exposition(state)

    def vitals(body: bytes) -> dict[str, float]:
        return {
            s.name: s.value
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
            if s.name.startswith(("process_", "python_"))
        }

    before = vitals(exposition.render())
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert before["process_max_fds"] == soft
    assert before["process_resident_memory_bytes"] > 10e6
    assert before["process_start_time_seconds"] <= time.time()
    assert "python_gc_collections_total" in before
    assert "python_info" in before
    opened = [socket.socket() for _ in range(20)]
    try:
        after = vitals(exposition.render())
    finally:
        for sock in opened:
            sock.close()
    assert after["process_open_fds"] >= before["process_open_fds"] + 20
    # OpenMetrics: the same families, one # EOF at the very end.
    body = exposition.render(openmetrics=True).decode()
    names = {f.name for f in openmetrics_families(body)}  # the parser wants # EOF last
    assert {"jitsi_server_up", "process_open_fds", "python_gc_collections"} <= names
    assert body.count("# EOF") == 1
    # What /probe answers (the servers' families only) has none of them.
    assert b"process_" not in exposition.render(monitor=False)


async def test_scrapes_leave_the_garbage_collector_on() -> None:
    """A scrape holds collections off while it is answered, and only then:
    after whole answers, a HEAD, and a client that hangs up half way."""
    state = State(location="eu")
    state.set_targets(targets(*(f"s{i}" for i in range(3000))))
    for i in range(3000):
        state.record(report(f"s{i}"))
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            for method in ("GET", "HEAD", "GET"):
                async with session.request(method, f"http://127.0.0.1:{port}/metrics") as resp:
                    await resp.read()
                assert gc.isenabled()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(4096)  # some of the answer, then hang up
        writer.transport.abort()
        for _ in range(100):
            if gc.isenabled():
                break
            await asyncio.sleep(0.02)
        assert gc.isenabled()

        # A client that asks and then stops reading: the answer (some 16 MB)
        # stalls in the socket buffers, and the hold still ends on time.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(1)
        assert not gc.isenabled(), "collections wait while a scrape is answered"
        await asyncio.sleep(GC_HOLD + 0.3)
        assert gc.isenabled(), "a client that stops reading keeps the collector off"
        writer.transport.abort()
    finally:
        await runner.cleanup()


def test_a_failing_listener_leaves_the_metrics_current(caplog: pytest.LogCaptureFixture) -> None:
    """Another listener's bug (one that comes first, as history's does) must
    not leave /metrics showing a server's previous report."""
    state = State(location="eu")

    def broken(server: str) -> None:
        raise RuntimeError("a bug")

    state.listeners.append(broken)
    state.set_targets(targets("a"))
    exposition = Exposition(state)
    state.record(report("a", up=True))
    assert 'jitsi_server_up{location="eu",server="a"} 1.0' in exposition.render().decode()
    state.record(report("a", up=False))
    assert 'jitsi_server_up{location="eu",server="a"} 0.0' in exposition.render().decode()
    assert "a listener of a's report failed" in caplog.text
