"""The signalling ladder against a real Prosody and a focus, and against hostile servers."""

from __future__ import annotations

import pytest
from aiohttp import web

from monitor.checks.jwt.result import JwtResult
from monitor.checks.signalling.xmpp import XmppResult
from monitor.config import MonitorConfig
from monitor.model import Check
from tests.support.prosody import (
    APP_ID,
    APP_SECRET,
    DOMAIN,
    FOCUS,
    MUC,
    SECURE,
    TOKEN,
    TOKEN_MOD,
    Focus,
    Prosody,
)
from tests.support.sites import StartSite, eventually, jitsi_app, make_config, probe_once
from tests.support.xmpp import Xmpp, reasons


def config_js(websocket: str, domain: str = DOMAIN, extra: str = "") -> str:
    return (
        f"var config = {{ hosts: {{ domain: '{domain}', muc: '{MUC}', focus: '{FOCUS}' }},"
        f" websocket: '{websocket}', bosh: '/http-bind' {extra} }};"
    )


# -- against a real Prosody ------------------------------------------------------


async def test_full_ladder_through_the_runner(
    prosody: Prosody, focus: Focus, start_site: StartSite
) -> None:
    site = await start_site(jitsi_app(config_js(prosody.websocket)))
    cfg: MonitorConfig = make_config(f"servers:\n  - name: school\n    url: {site.url}\n")
    report = await probe_once(cfg)
    assert reasons(report) == {
        "web": "ok",
        "configjs": "ok",
        "external_api": "ok",
        "embed": "ok",
        "signalling": "ok",
        "focus": "ok",
        "muc": "ok",
        # this Prosody announces no STUN or TURN service (not part of the verdict)
        "stun": "no_stun_service",
        "turn": "no_turn_service",
        "turn_relay": "no_turn_service",
    }
    assert report.up
    assert [p.name for p in report.result(XmppResult).phases] == [
        "upgrade",
        "open",
        "auth",
        "bind",
        "ping",
        "focus",
        "join",
        "leave",
    ]
    assert report.result(XmppResult).ping_rtt is not None
    assert report.result(XmppResult).ping_rtt > 0
    # an anonymous user in a room focus created: no special rights
    assert (report.result(XmppResult).affiliation, report.result(XmppResult).role) == (
        "none",
        "participant",
    )
    # the probe asked focus for a fresh healthcheck room, left it, and it is gone
    (room,) = focus.requests
    assert room.startswith("healthcheck-")
    assert room.endswith(f"@{MUC}")
    await eventually(lambda: bool(focus.seen_leaves))
    assert [leave.split("/")[0] for leave in focus.seen_leaves] == [room]
    assert await focus.rooms() == []


async def test_focus_not_ready(prosody: Prosody, focus: Focus, xmpp: Xmpp) -> None:
    focus.ready = False
    result = await xmpp(prosody.websocket)
    assert reasons(result) == {"signalling": "ok", "focus": "focus_not_ready", "muc": "skipped"}


async def test_focus_down(prosody: Prosody, xmpp: Xmpp) -> None:
    # no focus component connected: the server answers for it
    result = await xmpp(prosody.websocket)
    assert reasons(result) == {"signalling": "ok", "focus": "focus_unavailable", "muc": "skipped"}
    focus_check = result.checks[1]
    assert FOCUS in focus_check.detail


async def test_join_without_focus_is_refused(prosody: Prosody, xmpp: Xmpp) -> None:
    result = await xmpp(prosody.websocket, focus=False)
    assert reasons(result) == {"signalling": "ok", "muc": "room_creation_restricted"}
    assert "Room creation is restricted" in result.checks[1].detail


async def test_auth_required_host_refuses_anonymous(prosody: Prosody, xmpp: Xmpp) -> None:
    result = await xmpp(prosody.websocket, domain=SECURE)
    assert reasons(result)["signalling"] == "sasl_not_allowed"
    assert "PLAIN" in result.checks[0].detail


async def test_stream_only(prosody: Prosody, xmpp: Xmpp) -> None:
    result = await xmpp(prosody.websocket, focus=False, join=False)
    assert reasons(result) == {"signalling": "ok"}
    assert "focus" not in {p.name for p in result.phases}


async def test_unknown_virtual_host(prosody: Prosody, xmpp: Xmpp) -> None:
    result = await xmpp(prosody.websocket, domain="nobody.test")
    assert reasons(result)["signalling"] == "stream_error"
    assert "host-unknown" in result.checks[0].detail


async def test_upgrade_refused(prosody: Prosody, xmpp: Xmpp) -> None:
    result = await xmpp(f"ws://127.0.0.1:{prosody.http}/no-such-path")
    assert reasons(result)["signalling"] == "ws_upgrade_refused"
    assert "HTTP 404" in result.checks[0].detail


async def test_signalling_redirects_are_not_followed(
    prosody: Prosody, xmpp: Xmpp, start_site: StartSite
) -> None:
    # a browser's WebSocket does not follow a redirect, nor does the probe
    async def moved(request: web.Request) -> web.Response:
        target = prosody.websocket if request.method == "GET" else prosody.bosh
        raise web.HTTPFound(target.replace("ws://", "http://"))

    app = web.Application()
    app.router.add_route("*", "/xmpp-websocket", moved)
    site = await start_site(app)
    result = await xmpp(f"ws://127.0.0.1:{site.port}/xmpp-websocket")
    assert reasons(result)["signalling"] == "ws_upgrade_refused"
    assert "redirect (HTTP 302)" in result.checks[0].detail
    result = await xmpp(None, bosh=f"http://127.0.0.1:{site.port}/xmpp-websocket")
    assert reasons(result)["signalling"] == "http_status"
    assert "HTTP 302" in result.checks[0].detail


async def test_public_servers_stop_before_joining(
    prosody: Prosody, focus: Focus, start_site: StartSite
) -> None:
    site = await start_site(jitsi_app(config_js(prosody.websocket)))
    cfg = make_config(f"servers:\n  - name: pub\n    url: {site.url}\n    kind: public\n")
    report = await probe_once(cfg)
    assert reasons(report)["focus"] == "ok"
    assert "muc" not in reasons(report)
    assert report.up


async def test_bosh_when_config_names_only_bosh(prosody: Prosody, focus: Focus, xmpp: Xmpp) -> None:
    result = await xmpp(None, bosh=prosody.bosh)
    assert reasons(result) == {"signalling": "ok", "focus": "ok", "muc": "ok"}
    assert result.checks[0].detail == "over BOSH"
    assert {"open", "auth", "bind", "ping", "focus", "join", "leave"} <= {
        p.name for p in result.phases
    }
    assert result.ping_rtt is not None
    await eventually(lambda: bool(focus.seen_leaves))
    assert await focus.rooms() == []


async def test_bosh_when_the_websocket_fails(prosody: Prosody, focus: Focus, xmpp: Xmpp) -> None:
    result = await xmpp(f"ws://127.0.0.1:{prosody.http}/no-such-path", bosh=prosody.bosh)
    assert reasons(result) == {"signalling": "ok", "focus": "ok", "muc": "ok"}
    assert "over BOSH; the WebSocket failed: WebSocket upgrade refused: HTTP 404" in (
        result.checks[0].detail
    )


async def test_bosh_login_refused(prosody: Prosody, xmpp: Xmpp) -> None:
    result = await xmpp(None, domain=SECURE, bosh=prosody.bosh)
    assert reasons(result)["signalling"] == "sasl_not_allowed"


async def test_bosh_endpoint_missing(prosody: Prosody, xmpp: Xmpp) -> None:
    result = await xmpp(None, bosh=f"http://127.0.0.1:{prosody.http}/no-bosh-here")
    assert reasons(result)["signalling"] == "http_status"
    assert "HTTP 404" in result.checks[0].detail


# -- hostile servers ------------------------------------------------------------


# -- token authentication on a real Prosody ---------------------------------------


@pytest.mark.parametrize(
    ("domain", "moderation"),
    [(TOKEN, "moderation_claim_ignored"), (TOKEN_MOD, "ok")],
    ids=["without-token-moderation", "with-token-moderation"],
)
async def test_token_matrix_on_prosody(
    prosody: Prosody,
    start_site: StartSite,
    monkeypatch: pytest.MonkeyPatch,
    domain: str,
    moderation: str,
) -> None:
    """Prosody with test plugins that check tokens as Jitsi's do, and a focus that,
    like jicofo with JWT authority, grants owner to every token user."""
    stand_in = Focus(prosody.component, grant_owner=True)
    await stand_in.start()
    monkeypatch.setenv("PROSODY_TEST_SECRET", APP_SECRET)
    try:
        js = (
            f"var config = {{ hosts: {{ domain: '{domain}', muc: 'conference.{domain}', "
            f"focus: '{FOCUS}' }}, websocket: '{prosody.websocket}' }};"
        )
        site = await start_site(jitsi_app(js))
        # Prosody listens on another port than the page: named as a signalling origin.
        cfg = make_config(
            f"servers:\n  - name: school\n    url: {site.url}\n    timeout: 10s\n"
            f"    jwt: {{app_id: {APP_ID}, secret_env: PROSODY_TEST_SECRET, settle: 1s,\n"
            f"          signalling_origins: ['http://127.0.0.1:{prosody.http}']}}\n"
        )
        report = await probe_once(cfg)
        got = reasons(report)
        assert (got["jwt_valid"], got["jwt_enforced"], got["moderation"]) == (
            "ok",
            "ok",
            moderation,
        ), report.checks
        cases = dict(report.result(JwtResult).cases)
        assert {k: v for k, v in cases.items() if k != "moderator_false"} == {
            "valid": True,
            "bad_signature": True,
            "expired": True,
            "no_token": True,
            "other_room": True,
            "moderator_true": True,
        }
        assert cases["moderator_false"] is (moderation == "ok")
        if moderation != "ok":  # this focus makes every participant owner
            detail = report.check(Check.MODERATION)
            assert detail is not None
            assert "focus grants owner to every participant" in detail.detail
        await eventually(lambda: not stand_in.joined_rooms)
        assert await stand_in.rooms() == []
    finally:
        await stand_in.stop()
