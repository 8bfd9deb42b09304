"""Cause 6 of issue 13: no ``internal_error`` from what config.js says.

Malformed signalling URLs fail the signalling check with ``protocol_error``
and the URL in the detail; focus, MUC and the token checks are reported as
skipped, with why. A property test feeds random URLs and config.js values
through the whole ladder against loopback servers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.ladder import Check
from monitor.model import Reason, ServerReport
from tests.support.sites import StartSite, jitsi_app, make_config, probe_once, start_zone
from tests.support.timing import SLACK

SECRET = "hostile-urls-secret-0123456789abcdef0123"

MALFORMED = [
    "ws://127.0.0.1:99999/xmpp-websocket",
    "ws://[::1/xmpp-websocket",
    "ws://127.0.0.1:5280\\evil/xmpp-websocket",
    "ws://a b/xmpp-websocket",
    "ws://xn--/x",
    "wss://",
    "ws://user:pw@127.0.0.1:1/x",
    "gopher://127.0.0.1/x",
    "ws://127.0.0.1:0/x",
]


def config_js(websocket: str | None, bosh: str | None = None, **hosts: str) -> str:
    values = {"domain": "meet.test", "muc": "conference.meet.test", **hosts}
    parts = [f"hosts: {json.dumps(values)}"]
    if websocket is not None:
        parts.append(f"websocket: {json.dumps(websocket)}")
    if bosh is not None:
        parts.append(f"bosh: {json.dumps(bosh)}")
    return "var config = {\n    " + ",\n    ".join(parts) + "\n};\n"


def server_config(url: str, dns: str, jwt: bool = True) -> str:
    text = (
        f"dns: {{nameservers: ['{dns}']}}\nservers:\n  - name: s\n    url: {url}\n    timeout: 3s\n"
    )
    if jwt:
        text += "    jwt: {app_id: lms, secret_env: HOSTILE_URLS_SECRET, settle: 0.2s}\n"
    return text


def no_internal_error(report: ServerReport) -> None:
    assert all(r.reason is not Reason.INTERNAL_ERROR for r in report.checks), report.checks


@pytest.mark.parametrize("websocket", MALFORMED)
async def test_a_malformed_url_fails_signalling_only(
    websocket: str,
    start_site: StartSite,
    nxdomain_dns: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HOSTILE_URLS_SECRET", SECRET)
    site = await start_site(jitsi_app(config_js(websocket)))
    started = asyncio.get_running_loop().time()
    with caplog.at_level(logging.ERROR):
        report = await probe_once(make_config(server_config(site.url, nxdomain_dns)))
    # ended by the ladder's 3 s deadline (and what a loaded machine adds), not a hang
    assert asyncio.get_running_loop().time() - started < 3 + SLACK
    no_internal_error(report)
    assert "crashed" not in caplog.text
    signalling = report.check(Check.SIGNALLING)
    assert signalling is not None
    assert signalling.reason is Reason.PROTOCOL_ERROR
    assert "malformed signalling URL" in signalling.detail
    assert "\x1b" not in signalling.detail
    for check in (Check.FOCUS, Check.MUC, Check.JWT_VALID, Check.JWT_ENFORCED, Check.MODERATION):
        result = report.check(check)
        assert result is not None, f"{check} is missing from the report"
        assert result.reason is Reason.SKIPPED
        assert result.detail.startswith(("not tried", "cannot tell"))  # with why
    web = report.check(Check.WEB)
    assert web is not None
    assert web.success  # no false verdict about the rest


@pytest.mark.parametrize(
    "websocket", ["ws://127.0.0.1:99999/xmpp-websocket", "wss://elsewhere.invalid:5443/x"]
)
async def test_bosh_does_not_hide_a_refused_websocket_url(
    websocket: str,
    start_site: StartSite,
    nxdomain_dns: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A malformed WebSocket URL, or one a token may not go to, fails signalling
    even when config.js also names a BOSH URL: browsers use the WebSocket."""
    monkeypatch.setenv("HOSTILE_URLS_SECRET", SECRET)
    site = await start_site(jitsi_app(config_js(websocket, bosh="/http-bind")))
    report = await probe_once(make_config(server_config(site.url, nxdomain_dns)))
    signalling = report.check(Check.SIGNALLING)
    assert signalling is not None
    assert signalling.reason is Reason.PROTOCOL_ERROR, signalling
    assert "BOSH" not in signalling.detail


# Hosts that never leave this machine: loopback addresses, names the test's
# DNS server does not know, and junk.
_HOSTS = st.one_of(
    st.sampled_from(["127.0.0.1", "[::1]", "localhost.invalid", "[::1", "", "a b", "xn--"]),
    st.text(alphabet=string.ascii_lowercase + "-.", min_size=1, max_size=20).map(
        lambda name: name + ".invalid"
    ),
)
_JUNK = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_URLS = st.one_of(
    st.builds(
        lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
        st.sampled_from(["ws://", "wss://", "http://", "https://", "//", "", "ws:", "javascript:"]),
        _HOSTS,
        st.one_of(
            st.just(""),
            st.integers(min_value=-5, max_value=200_000).map(lambda p: f":{p}"),
            _JUNK.map(lambda t: ":" + t),
        ),
        st.one_of(st.just("/xmpp-websocket"), _JUNK.map(lambda t: "/" + t), st.just("")),
    ),
    st.sampled_from(MALFORMED),
    st.none(),
)
_NAMES = st.one_of(
    st.sampled_from(["meet.test", "", "a" * 300, "x'y", "<x>", "[/]", "\u202e"]),
    _JUNK,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(websocket=_URLS, bosh=_URLS, domain=_NAMES, muc=_NAMES, focus=_NAMES)
def test_random_config_js_values_never_crash_the_ladder(
    monkeypatch: pytest.MonkeyPatch,
    websocket: str | None,
    bosh: str | None,
    domain: str,
    muc: str,
    focus: str,
) -> None:
    monkeypatch.setenv("HOSTILE_URLS_SECRET", SECRET)
    text = config_js(websocket, bosh, domain=domain, muc=muc, focus=focus)

    async def ladder() -> ServerReport:
        from aiohttp import web

        dns, nameserver = await start_zone()
        runner = web.AppRunner(jitsi_app(text), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            cfg = make_config(server_config(f"http://127.0.0.1:{port}/", nameserver))
            return await probe_once(cfg)
        finally:
            await runner.cleanup()
            dns.close()

    report = asyncio.run(ladder())
    no_internal_error(report)
    # every check of the ladder is reported, whatever config.js said
    assert {r.check for r in report.checks} >= {Check.WEB, Check.SIGNALLING, Check.JWT_VALID}
