"""Real config.js shapes served by a loopback site, at the root and under a tenant.

The fixtures (tests/fixtures/configjs/, each citing the file it models) are
served the way their deployments serve them: nginx's SSI ``echo`` directives
filled in (``$subdomain``/``$subdir`` from the tenant path, ``$http_host``),
docker-jitsi-meet's parts concatenated into one config.js. The assertions are
the values a browser on that page gets from ``config``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from monitor.checks.web.probe import WebResult
from monitor.model import Check, ConfigFacts, Reason, ServerReport
from monitor.runner import Runner
from monitor.views import report_dict
from tests.support import paths
from tests.support.sites import EXTERNAL_API, Site, StartSite, make_config

FIXTURES = paths.FIXTURES / "configjs"
_ECHO = re.compile(r'<!--#\s*echo\s+var="([^"]*)"(?:\s+default="([^"]*)")?\s*-->')

Probe = Callable[..., Awaitable[ServerReport]]


def fixture(*names: str) -> str:
    """One config.js made of fixture files, concatenated as docker-jitsi-meet does."""
    return "\n".join((FIXTURES / name).read_text() for name in names)


def ssi(body: str, request: web.Request, tenant: str | None) -> str:
    """nginx's SSI ``echo`` as Jitsi's nginx configs set its variables."""
    known = {"http_host": request.host}
    if tenant:
        known |= {"subdomain": f"{tenant}.", "subdir": f"{tenant}/"}
    return _ECHO.sub(lambda m: known.get(m.group(1), m.group(2) or ""), body)


def jitsi_site(body: str, *, with_ssi: bool = True) -> web.Application:
    """A Jitsi web frontend: every file also under /<tenant>/, config.js through SSI."""

    async def handle(request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")
        tenant = parts[0] if len(parts) == 2 else None
        name = parts[-1]
        if name == "config.js":
            text = ssi(body, request, tenant) if with_ssi else body
            return web.Response(text=text, content_type="application/javascript")
        if name == "external_api.js":
            return web.Response(text=EXTERNAL_API, content_type="application/javascript")
        return web.Response(text="<html><title>Jitsi Meet</title></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    runners: list[Runner] = []

    async def run(url: str, kind: str = "self_hosted") -> ServerReport:
        cfg = make_config(
            f"servers:\n  - name: s\n    url: {url}\n    kind: {kind}\n"
            "    signalling: {enabled: false}\n"
        )
        runner = Runner(cfg)
        runners.append(runner)
        return await runner.run_now(cfg.targets()[0])

    yield run
    for runner in runners:
        await runner.close()


async def served(
    start_site: StartSite, probe: Probe, body: str, path: str = "", **kw: str
) -> tuple[Site, ServerReport]:
    site = await start_site(jitsi_site(body))
    report = await probe(site.url + path, **kw)
    return site, report


def facts_of(report: ServerReport) -> ConfigFacts:
    check = report.check(Check.CONFIGJS)
    assert check is not None
    assert check.reason is Reason.OK, check.detail
    assert report.result(WebResult).config is not None
    return report.result(WebResult).config


async def test_jitsi_meet_2014(start_site: StartSite, probe: Probe) -> None:
    _, report = await served(start_site, probe, fixture("jitsi-meet-2014.js"))
    facts = facts_of(report)
    assert (facts.domain, facts.muc, facts.muc_fallback) == (
        "meet.example.org",
        "conference.meet.example.org",
        False,
    )
    # protocol-relative: the page's scheme (http on loopback)
    assert facts.bosh == "http://meet.example.org/http-bind"
    assert facts.websocket is None


async def test_docker_2019_relative_bosh_and_stun(start_site: StartSite, probe: Probe) -> None:
    site, report = await served(start_site, probe, fixture("docker-2019.js"), "acme/")
    facts = facts_of(report)
    assert (facts.domain, facts.muc) == ("meet.jitsi", "muc.meet.jitsi")
    assert facts.bosh == f"{site.url}http-bind", "'/http-bind' is from the host's root"
    assert facts.p2p_enabled is True
    assert facts.stun_servers == (
        "stun:stun.l.google.com:19302",
        "stun:stun1.l.google.com:19302",
        "stun:stun2.l.google.com:19302",
    )


@pytest.mark.parametrize(("path", "muc"), [("", "conference."), ("acme/", "conference.acme.")])
async def test_debian_template(start_site: StartSite, probe: Probe, path: str, muc: str) -> None:
    _, report = await served(start_site, probe, fixture("debian-2021.js"), path)
    facts = facts_of(report)
    assert facts.muc == f"{muc}meet.example.org"
    assert facts.bosh == "http://meet.example.org/http-bind"
    assert facts.stun_servers == ("stun:meet-jit-si-turnrelay.jitsi.net:443",)


@pytest.mark.parametrize(
    ("path", "muc", "bosh"),
    [
        ("", "conference.meet.example.org", "http://meet.example.org/http-bind"),
        ("acme/", "conference.acme.meet.example.org", "http://meet.example.org/acme/http-bind"),
        (
            "Big.Team/",
            "conference.big_team.meet.example.org",
            "http://meet.example.org/Big.Team/http-bind",
        ),
    ],
)
async def test_upstream_tenant_code(
    start_site: StartSite, probe: Probe, path: str, muc: str, bosh: str
) -> None:
    _, report = await served(start_site, probe, fixture("upstream-2023.js"), path)
    facts = facts_of(report)
    assert (facts.domain, facts.muc, facts.bosh) == ("meet.example.org", muc, bosh)


async def test_upstream_without_ssi_uses_its_guards(start_site: StartSite, probe: Probe) -> None:
    site = await start_site(jitsi_site(fixture("upstream-2023.js"), with_ssi=False))
    facts = facts_of(await probe(site.url + "acme/"))
    assert facts.muc == "conference.meet.example.org"
    assert facts.bosh == "http://meet.example.org/http-bind"


@pytest.mark.parametrize(("path", "tenant"), [("", ""), ("acme/", "acme")])
async def test_docker_concatenated_parts(
    start_site: StartSite, probe: Probe, path: str, tenant: str
) -> None:
    body = fixture("docker-2026-system.js", "docker-2026-settings.js")
    _, report = await served(start_site, probe, body, path)
    facts = facts_of(report)
    sub = f"{tenant}/" if tenant else ""
    assert facts == ConfigFacts(
        domain="meet.jitsi",
        anonymousdomain="guest.meet.jitsi",
        authdomain="meet.jitsi",
        muc=f"muc.{tenant}.meet.jitsi" if tenant else "muc.meet.jitsi",
        bosh=f"https://meet.example.org/{sub}http-bind",
        websocket=f"wss://meet.example.org/{sub}xmpp-websocket",
        token_auth_url="https://auth.example.org/login?room={room}",
        p2p_enabled=True,
        stun_servers=("stun:meet.example.org:3478", "stun:stun.example.net:443"),
    )


async def test_custom_config_built_from_location(start_site: StartSite, probe: Probe) -> None:
    body = fixture("docker-2026-system.js", "docker-2026-settings.js", "custom-config-location.js")
    site, report = await served(start_site, probe, body, "acme/")
    facts = facts_of(report)
    host = site.url.removeprefix("http://").rstrip("/")
    assert facts.websocket == f"ws://{host}/acme/xmpp-websocket"
    assert facts.bosh == f"http://{host}/acme/http-bind"
    assert facts.muc == "muc.acme.meet.jitsi", "the earlier parts still count"


async def test_docker_double_quoted_ssi(start_site: StartSite, probe: Probe) -> None:
    _, report = await served(start_site, probe, fixture("docker-2023-system.js"), "acme/")
    assert facts_of(report).muc == "muc.acme.meet.jitsi"
    # the same file served without SSI does not parse in a browser either
    site = await start_site(jitsi_site(fixture("docker-2023-system.js"), with_ssi=False))
    report = await probe(site.url)
    check = report.check(Check.CONFIGJS)
    assert check is not None
    assert check.reason is Reason.CONFIGJS_ERROR
    assert "does not parse" in check.detail
    assert "line 17" in check.detail
    assert report.result(WebResult).config is None
    assert not report.up


@pytest.mark.parametrize("path", ["", "acme/"])
async def test_openfire_hosts_from_location(start_site: StartSite, probe: Probe, path: str) -> None:
    site, report = await served(start_site, probe, fixture("openfire-ofmeet.js"), path)
    facts = facts_of(report)
    assert (facts.domain, facts.muc) == ("127.0.0.1", "conference.127.0.0.1")
    assert facts.bosh == f"{site.url}http-bind/"


@pytest.mark.parametrize(("path", "muc"), [("", "conference."), ("acme/", "conference.acme.")])
async def test_meet_jit_si_template(
    start_site: StartSite, probe: Probe, path: str, muc: str
) -> None:
    site, report = await served(start_site, probe, fixture("infra-meet-jit-si.js"), path)
    facts = facts_of(report)
    host = site.url.removeprefix("http://").rstrip("/")
    assert facts.muc == f"{muc}meet.jit.si"
    assert facts.focus == "focus.meet.jit.si"
    assert facts.websocket == f"wss://{host}/{path}xmpp-websocket"
    assert facts.bosh == f"https://{host}/{path}http-bind"
    assert facts.disable_iframe_api is True
    assert (facts.p2p_enabled, facts.stun_servers) == (True, ())
    assert report.result(WebResult).embed_limit_seconds == 300


APP_ID = "vpaas-magic-cookie-0123456789abcdef"


async def test_jaas_shard_proxy_template_literal(start_site: StartSite, probe: Probe) -> None:
    site, report = await served(
        start_site, probe, fixture("infra-jaas-shard.js"), f"{APP_ID}/", kind="jaas"
    )
    facts = facts_of(report)
    host = site.url.removeprefix("http://").rstrip("/")
    assert facts.muc == f"conference.{APP_ID}.8x8.vc"
    assert facts.websocket == f"wss://{host}/v1/_ws/release-1234/xmpp-websocket?tenant={APP_ID}"
    assert facts.bosh == f"https://{host}/{APP_ID}/http-bind"
    assert facts.token_auth_url == "https://jaas.example.org/token?room={room}"
    assert report.result(WebResult).embed_limit_seconds == 0, (
        "JaaS meetings are exempt from the embed limit"
    )


async def test_jaas_docker_custom_config(start_site: StartSite, probe: Probe) -> None:
    body = fixture("docker-jaas-system.js", "provisioning-jaas-custom.js")
    site, report = await served(start_site, probe, body, f"{APP_ID}/", kind="jaas")
    facts = facts_of(report)
    host = site.url.removeprefix("http://").rstrip("/")
    assert facts.muc == f"conference.{APP_ID}.8x8.vc"
    assert facts.websocket == f"wss://{host}/v1/_ws/release-1234/xmpp-websocket?tenant={APP_ID}"
    assert facts.bosh == f"https://8x8.vc/{APP_ID}/http-bind"
    assert facts.disable_iframe_api is True


async def test_jaas_without_the_shard_proxy(start_site: StartSite, probe: Probe) -> None:
    _, report = await served(start_site, probe, fixture("docker-jaas-system.js"), f"{APP_ID}/")
    facts = facts_of(report)
    assert facts.muc == f"conference.{APP_ID}.8x8.vc"
    assert facts.websocket == f"wss://8x8.vc/{APP_ID}/xmpp-websocket"


async def test_muc_fallback_is_reported(start_site: StartSite, probe: Probe) -> None:
    body = "var config = { hosts: { domain: 'meet.example.org' }, websocket: '/xmpp-websocket' };"
    site, report = await served(start_site, probe, body)
    facts = facts_of(report)
    assert (facts.muc, facts.muc_fallback) == ("conference.meet.example.org", True)
    check = report.check(Check.CONFIGJS)
    assert check is not None
    assert "names no hosts.muc: conference.meet.example.org assumed" in check.detail
    cfg = make_config(f"servers:\n  - name: s\n    url: {site.url}\n")
    config = report_dict(cfg.targets()[0], report)["config"]
    assert config["muc"] == "conference.meet.example.org"
    assert config["muc_fallback"] is True
    assert config["p2p"] == {"enabled": None, "stun_servers": []}


# -- served with the SSI template raw (no `ssi on;` for config.js) -----------------


async def signalling_ladder(url: str) -> ServerReport:
    """The whole ladder, signalling included, as a monitored server gets it."""
    cfg = make_config(f"servers:\n  - name: s\n    url: {url}\n    kind: self_hosted\n")
    runner = Runner(cfg)
    try:
        return await runner.run_now(cfg.targets()[0])
    finally:
        await runner.close()


def bad_host(report: ServerReport, key: str) -> str:
    check = report.check(Check.CONFIGJS)
    assert check is not None
    assert check.reason is Reason.CONFIGJS_BAD_HOST, check.detail
    assert f"hosts.{key} to '" in check.detail
    assert "`ssi on;`" in check.detail
    assert "names no" not in check.detail
    return check.detail


@pytest.mark.parametrize(
    ("names", "key", "value"),
    [
        (("debian-2021.js",), "muc", 'conference.<!--# echo var="subdomain" default="" -->'),
        (
            ("docker-2026-system.js", "docker-2026-settings.js"),
            "muc",
            'muc.<!--# echo var="subdomain" default="" --.meet.jitsi',
        ),
    ],
)
async def test_raw_ssi_template_fails_configjs(
    start_site: StartSite, names: tuple[str, ...], key: str, value: str
) -> None:
    site = await start_site(jitsi_site(fixture(*names), with_ssi=False))
    report = await signalling_ladder(site.url)
    assert value in bad_host(report, key)
    config = report.result(WebResult).config
    assert config is not None
    assert (config.muc, config.muc_fallback) == (None, False), "no default stands in for it"
    # the join is never tried, let alone passed with conference.<domain>
    for check in (Check.SIGNALLING, Check.MUC):
        result = report.check(check)
        assert result is not None
        assert result.reason is Reason.SKIPPED
    assert not report.up


async def test_the_same_files_processed_pass_configjs(start_site: StartSite, probe: Probe) -> None:
    for body in (fixture("debian-2021.js"), fixture("docker-2026-system.js")):
        _, report = await served(start_site, probe, body, "acme/")
        assert facts_of(report).muc is not None
