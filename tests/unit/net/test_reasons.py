"""Cause 7 of issue 13: reasons that say what happened.

A wrong certificate on an IP URL is a name mismatch; every TLS failure has a
detail (a TLS-1.0-only server included); stream features in the wrong
namespace are named as such; ``validate`` refuses a timeout too short for
``jwt.settle``, naming the minimum, and that minimum is enough.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from pathlib import Path

import aiohttp
import pytest
import trustme

from monitor.checks.signalling.xmpp import XmppSettings, no_redirects, probe_xmpp
from monitor.config import ConfigError, parse_config
from monitor.config.checks import needed_timeout
from monitor.lab import LabOptions, LabServer
from monitor.lab.tokens import TokenPolicy
from monitor.ladder import Check
from monitor.model import ConfigFacts, Reason
from tests.support.sites import StartSite, jitsi_app, make_config, probe_once, server_context
from tests.support.timing import SLACK
from tests.support.xmpp import _xmpp_handler, reasons

SECRET = "reasons-secret-0123456789abcdef0123456789"


def web_config(url: str, ca_file: Path, timeout: str = "3s") -> str:
    return (
        f"servers:\n  - name: s\n    url: {url}\n    timeout: {timeout}\n"
        f"    tls: {{ca_file: {ca_file}}}\n    signalling: {{enabled: false}}\n"
    )


async def test_a_wrong_certificate_on_an_ip_url_is_a_name_mismatch(
    start_site: StartSite, ca: trustme.CA, ca_file: Path
) -> None:
    site = await start_site(jitsi_app(), server_context(ca, "other.example"))
    url = f"https://127.0.0.1:{site.port}/"
    report = await probe_once(make_config(web_config(url, ca_file)))
    web = report.check(Check.WEB)
    assert web is not None
    assert web.reason is Reason.TLS_HOSTNAME_MISMATCH
    assert "127.0.0.1" in web.detail


async def test_a_tls_1_0_server_has_a_detail(
    start_site: StartSite, ca: trustme.CA, ca_file: Path
) -> None:
    ctx = server_context(ca, "localhost", "127.0.0.1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pytest.skip("this OpenSSL cannot serve TLS 1.0")
    site = await start_site(jitsi_app(), ctx)
    report = await probe_once(make_config(web_config(site.url, ca_file)))
    web = report.check(Check.WEB)
    assert web is not None
    assert web.reason is Reason.TLS_ERROR
    assert "TLS 1.2 or newer" in web.detail
    assert not web.detail.endswith(": ")


async def test_features_in_the_wrong_namespace_are_named(start_site: StartSite) -> None:
    frames: list[str | bytes] = [
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='meet.jitsi' version='1.0'/>",
        "<stream:features xmlns:stream='jabber:client'><mechanisms/></stream:features>",
    ]
    site = await start_site(jitsi_app(routes={"/xmpp-websocket": _xmpp_handler(frames)}))
    started = time.monotonic()
    facts = ConfigFacts(domain="meet.jitsi", websocket=f"ws://127.0.0.1:{site.port}/xmpp-websocket")
    async with aiohttp.ClientSession(trace_configs=[no_redirects()]) as session:
        # a deadline far off, so that waiting for it cannot pass for load
        deadline = asyncio.get_running_loop().time() + 60
        result = await probe_xmpp(session, facts, "http://127.0.0.1", XmppSettings(), deadline)
    assert time.monotonic() - started < 60 - SLACK, "it waited for the deadline"
    assert reasons(result)["signalling"] == "protocol_error"
    detail = result.checks[0].detail
    assert "stream features in the namespace 'jabber:client'" in detail


def jwt_server(url: str, timeout: str, jwt: str) -> str:
    return (
        f"servers:\n  - name: school\n    url: {url}\n    timeout: {timeout}\n"
        f"    jwt: {{app_id: lms, secret_env: REASONS_SECRET{jwt}}}\n"
    )


@pytest.mark.parametrize(
    ("jwt", "needed"),
    [("", "8s"), (", matrix: valid_only", "4.7s"), (", settle: 1s", "4s")],
)
def test_validate_refuses_a_timeout_shorter_than_the_ladder_needs(
    monkeypatch: pytest.MonkeyPatch, jwt: str, needed: str
) -> None:
    monkeypatch.setenv("REASONS_SECRET", SECRET)
    with pytest.raises(ConfigError) as caught:
        parse_config(jwt_server("https://meet.example", "3s", jwt), "s.yaml")
    (problem,) = caught.value.problems
    assert str(problem).startswith("s.yaml:4: servers[0].timeout: timeout 3s is shorter than")
    assert f"the {needed} this server's ladder needs" in problem.message
    assert f"raise the timeout to at least {needed}" in problem.message
    # the minimum itself is accepted; without a join there is no settle to wait for
    parse_config(jwt_server("https://meet.example", needed, jwt), "s.yaml")
    parse_config(
        jwt_server("https://meet.example", "3s", jwt) + "    signalling: {join: false}\n", "s.yaml"
    )


async def test_the_minimum_is_enough_to_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the minimum timeout a token server is not cut in its settle (muc: timeout)."""
    monkeypatch.setenv("REASONS_SECRET", SECRET)
    lab = LabServer(LabOptions(tokens=TokenPolicy(app_id="lms", secret=SECRET)))
    await lab.start()
    try:
        minimum = needed_timeout(1.0, 2)
        cfg = parse_config(jwt_server(lab.url, f"{minimum}s", ", settle: 1s"), "s.yaml")
        started = asyncio.get_running_loop().time()
        report = await probe_once(cfg)
        assert asyncio.get_running_loop().time() - started < minimum + 1
    finally:
        await lab.stop()
    muc = report.check(Check.MUC)
    assert muc is not None
    assert muc.reason is Reason.OK, muc.detail
    moderation = report.check(Check.MODERATION)
    assert moderation is not None
    assert moderation.reason is not Reason.TIMEOUT
