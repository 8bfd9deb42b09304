"""The web ladder against real loopback servers: every outcome a user can meet."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from monitor.checks.web.probe import WebResult
from monitor.config import MonitorConfig
from monitor.model import Check, Reason, ServerReport
from monitor.runner import Runner
from tests.support.sites import (
    CONFIG_JS,
    StartSite,
    jitsi_app,
    make_config,
    self_signed_context,
    server_context,
)
from tests.support.timing import SLACK

Probe = Callable[..., Awaitable[ServerReport]]


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    """Probe one URL through the real Runner, with optional config lines."""
    runners: list[Runner] = []

    async def run(url: str, extra: str = "", server_extra: str = "", **kw: str) -> ServerReport:
        cfg: MonitorConfig = make_config(
            f"{extra}\nservers:\n  - name: s\n    url: {url}\n"
            f"    kind: {kw.get('kind', 'self_hosted')}\n"
            f"    timeout: {kw.get('timeout', '5s')}\n"
            "    signalling: {enabled: false}\n"
            f"{server_extra}"
        )
        runner = Runner(cfg)
        runners.append(runner)
        return await runner.run_now(cfg.targets()[0])

    yield run
    for runner in runners:
        await runner.close()


def reasons(report: ServerReport) -> dict[str, str]:
    return {r.check.value: r.reason.value for r in report.checks}


async def test_healthy_server_passes_every_check(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app())
    report = await probe(site.url)
    assert reasons(report) == {
        "web": "ok",
        "configjs": "ok",
        "external_api": "ok",
        "embed": "ok",
    }
    assert report.up
    assert report.result(WebResult).http_status == 200
    assert [p.name for p in report.result(WebResult).http_phases] == [
        "resolve",
        "connect",
        "processing",
        "transfer",
    ]
    assert report.result(WebResult).embed_limit_seconds == 0
    assert report.result(WebResult).config is not None
    assert report.result(WebResult).config.domain == "meet.test"
    assert report.result(WebResult).config.muc == "conference.meet.test"
    # a relative bosh URL is resolved against config.js
    assert report.result(WebResult).config.bosh == f"{site.url}http-bind"
    assert report.result(WebResult).config.websocket == "ws://127.0.0.1:9/xmpp-websocket"


async def test_one_connection_serves_the_whole_ladder(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app())
    await probe(site.url)
    assert [r.path for r in site.requests] == ["/", "/config.js", "/external_api.js"]
    assert len(site.peers) == 1, "keep-alive: one TCP connection for the ladder"


async def test_requests_identify_the_monitor(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app())
    await probe(site.url, extra="contact: ops@school.example")
    agent = site.requests[0].headers["User-Agent"]
    assert agent.startswith("jitsi-monitor/")
    assert "ops@school.example" in agent


async def test_embed_limit_reported_when_iframe_api_disabled(
    start_site: StartSite, probe: Probe
) -> None:
    site = await start_site(jitsi_app(disable_iframe=True))
    report = await probe(site.url)
    assert report.result(WebResult).embed_limit_seconds == 300
    embed = report.check(Check.EMBED)
    assert embed is not None
    assert embed.reason is Reason.EMBED_LIMITED
    assert "300 s" in embed.detail
    assert report.up, "the embed limit limits what a server is fit for, not whether it is up"


async def test_jaas_meetings_are_exempt_from_embed_limit(
    start_site: StartSite, probe: Probe
) -> None:
    site = await start_site(jitsi_app(disable_iframe=True))
    report = await probe(site.url, kind="jaas")
    assert report.result(WebResult).embed_limit_seconds == 0
    assert reasons(report)["embed"] == "ok"


async def test_https_with_valid_certificate(
    start_site: StartSite, probe: Probe, ca: trustme.CA, ca_file: Path
) -> None:
    site = await start_site(jitsi_app(), server_context(ca))
    report = await probe(site.url, server_extra=f"    tls: {{ca_file: {ca_file}}}\n")
    assert report.up, report.checks
    assert [p.name for p in report.result(WebResult).http_phases] == [
        "resolve",
        "connect",
        "tls",
        "processing",
        "transfer",
    ]
    assert report.result(WebResult).cert is not None
    assert report.result(WebResult).cert.tls_version in ("TLSv1.2", "TLSv1.3")
    days = (report.result(WebResult).cert.not_after - time.time()) / 86400
    assert days > 300  # trustme issues certificates valid for years


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", Reason.TLS_EXPIRED),
        ("wrong_host", Reason.TLS_HOSTNAME_MISMATCH),
        ("untrusted", Reason.TLS_UNTRUSTED),
        ("self_signed", Reason.TLS_UNTRUSTED),
    ],
)
async def test_bad_certificates(
    start_site: StartSite,
    probe: Probe,
    ca: trustme.CA,
    ca_file: Path,
    tmp_path: Path,
    case: str,
    reason: Reason,
) -> None:
    if case == "expired":
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        ctx = server_context(ca, "localhost", not_after=past)
    elif case == "wrong_host":
        ctx = server_context(ca, "other.example")
    elif case == "untrusted":
        ctx = server_context(trustme.CA())  # a CA the monitor does not trust
    else:
        ctx = self_signed_context(tmp_path)
    site = await start_site(jitsi_app(), ctx)
    report = await probe(site.url, server_extra=f"    tls: {{ca_file: {ca_file}}}\n")
    assert reasons(report) == {
        "web": reason.value,
        "configjs": "skipped",
        "external_api": "skipped",
        "embed": "skipped",
    }
    assert not report.up
    assert not site.requests, "no request goes over a connection that failed verification"


async def test_verification_can_be_switched_off(
    start_site: StartSite, probe: Probe, ca: trustme.CA
) -> None:
    site = await start_site(jitsi_app(), server_context(trustme.CA()))
    report = await probe(site.url, server_extra="    tls: {verify: false}\n")
    assert report.up
    assert report.result(WebResult).cert is not None, (
        "certificate facts are read without verification too"
    )


async def test_refused_connection(probe: Probe) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = await probe(f"http://127.0.0.1:{port}/")
    assert reasons(report)["web"] == "connect_refused"
    assert report.first_failure is not None
    assert f"127.0.0.1:{port}" in report.first_failure.detail


async def test_server_that_never_answers_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read the request, never answer

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = make_config(
        f"servers:\n  - name: s\n    url: http://127.0.0.1:{port}/\n    timeout: 0.5s\n"
        "    signalling: {enabled: false}\n"
    )
    runner = Runner(cfg)
    t0 = time.monotonic()
    report = await runner.run_now(cfg.targets()[0])
    elapsed = time.monotonic() - t0
    await runner.close()
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()
    assert reasons(report) == {
        "web": "timeout",
        "configjs": "skipped",
        "external_api": "skipped",
        "embed": "skipped",
    }
    web_check = report.check(Check.WEB)
    assert web_check is not None
    assert "processing" in web_check.detail
    assert [p.name for p in web_check.phases] == ["resolve", "connect"]
    # the 0.5 s deadline (and what a loaded machine adds), not aiohttp's 5-minute total
    assert elapsed < 0.5 + SLACK


async def test_dns_failure(nxdomain_dns: str, probe: Probe) -> None:
    report = await probe(
        "https://no-such-server.test/", extra=f"dns: {{nameservers: ['{nxdomain_dns}']}}"
    )
    web_check = report.check(Check.WEB)
    assert web_check is not None
    assert web_check.reason is Reason.DNS_ERROR
    assert "no-such-server.test" in web_check.detail
    assert [p.name for p in web_check.phases] == ["resolve"]


async def test_redirect_loop(start_site: StartSite, probe: Probe) -> None:
    app = web.Application()

    async def loop_a(_: web.Request) -> web.Response:
        raise web.HTTPFound("/b")

    async def loop_b(_: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    app.router.add_get("/", loop_a)
    app.router.add_get("/b", loop_b)
    site = await start_site(app)
    report = await probe(site.url)
    assert reasons(report)["web"] == "too_many_redirects"
    assert len([r for r in site.requests if r.path == "/"]) <= 4


async def test_redirects_are_followed(start_site: StartSite, probe: Probe) -> None:
    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/")

    site = await start_site(jitsi_app(routes={"/old/": moved}))
    report = await probe(site.url + "old/")
    assert reasons(report)["web"] == "ok"
    assert report.result(WebResult).http_status == 200
    assert [r.path for r in site.requests][:2] == ["/old/", "/"]

    # to another origin: a second connection, its phases added to the first's
    async def elsewhere(_: web.Request) -> web.Response:
        raise web.HTTPFound(site.url)

    app = web.Application()
    app.router.add_get("/", elsewhere)
    site2 = await start_site(app)
    report = await probe(site2.url)
    assert reasons(report)["web"] == "ok"
    web_check = report.check(Check.WEB)
    assert web_check is not None
    assert report.result(WebResult).http_status == 200


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_body_is_refused(
    start_site: StartSite, probe: Probe, chunked: bool
) -> None:
    big = b"x" * (1024 * 1024 + 1)

    async def huge(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=big)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(20):
            await resp.write(b"y" * 65536)
        await resp.write_eof()
        return resp

    site = await start_site(jitsi_app(routes={"/config.js": huge}))
    report = await probe(site.url, extra="defaults: {max_body_bytes: 1048576}")
    assert reasons(report)["configjs"] == "body_too_large"
    assert reasons(report)["external_api"] == "ok", "one oversized file does not stop the ladder"


async def test_gzip_bodies_are_inflated(start_site: StartSite, probe: Probe) -> None:
    async def config(_: web.Request) -> web.Response:
        resp = web.Response(body=gzip.compress((CONFIG_JS % "true").encode()))
        resp.headers["Content-Encoding"] = "gzip"
        return resp

    site = await start_site(jitsi_app(routes={"/config.js": config}))
    report = await probe(site.url)
    assert report.up
    assert report.result(WebResult).embed_limit_seconds == 300


async def test_gzip_bomb_is_capped(start_site: StartSite, probe: Probe) -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))

    async def config(_: web.Request) -> web.Response:
        resp = web.Response(body=bomb)
        resp.headers["Content-Encoding"] = "gzip"
        return resp

    site = await start_site(jitsi_app(routes={"/config.js": config}))
    report = await probe(site.url, extra="defaults: {max_body_bytes: 1048576}")
    assert reasons(report)["configjs"] == "body_too_large"


async def test_http_error_on_page_does_not_stop_the_ladder(
    start_site: StartSite, probe: Probe
) -> None:
    site = await start_site(jitsi_app(index_status=503))
    report = await probe(site.url)
    assert reasons(report) == {
        "web": "http_status",
        "configjs": "ok",
        "external_api": "ok",
        "embed": "ok",
    }
    assert report.result(WebResult).http_status == 503
    assert report.first_failure is not None
    assert report.first_failure.detail == "HTTP 503 for /"


async def test_config_without_signalling_url(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app("var config = { hosts: { domain: 'x' } };"))
    report = await probe(site.url)
    assert reasons(report)["configjs"] == "no_signalling_url"
    assert not report.up


async def test_external_api_that_is_not_jitsi(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_app(external_api="<html>not found</html>"))
    report = await probe(site.url)
    assert reasons(report)["external_api"] == "external_api_invalid"


async def _raw_server(reply: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "protocol_error"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Flood: " + b"a" * 70000 + b"\r\n\r\n", "protocol_error"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", "protocol_error"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "connection_closed"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "protocol_error"),
        (b"", "connection_closed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xc2\xb2\r\n\r\nab", "protocol_error"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "protocol_error"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nab\r\n", "protocol_error"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", "protocol_error"),
        (
            b"HTTP/1.1 302 Found\r\nLocation: http://[::1/\r\nContent-Length: 0\r\n\r\n",
            "protocol_error",
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: http://a:99999/\r\nContent-Length: 0\r\n\r\n",
            "protocol_error",
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: gopher://a/\r\nContent-Length: 0\r\n\r\n",
            "protocol_error",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\nok",
            "protocol_error",
        ),
    ],
)
async def test_hostile_responses(probe: Probe, reply: bytes, reason: str) -> None:
    server, port = await _raw_server(reply)
    try:
        report = await probe(f"http://127.0.0.1:{port}/")
    finally:
        server.close()
        await server.wait_closed()
    assert reasons(report)["web"] == reason
    assert not report.up
    assert not [c for c in report.checks if c.reason is Reason.INTERNAL_ERROR]
