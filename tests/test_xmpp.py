"""The signalling ladder against a real Prosody and a focus, and against hostile servers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest
from aiohttp import web

from monitor.checks.jwt.result import JwtResult
from monitor.checks.signalling.xmpp import XmppResult, XmppSettings, no_redirects, probe_xmpp
from monitor.config import MonitorConfig
from monitor.model import Check, ConfigFacts, ServerReport
from tests.conftest import StartSite, eventually, jitsi_app, make_config, probe_once
from tests.prosody import (
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


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    server = Prosody(tmp_path_factory.mktemp("prosody"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def focus(prosody: Prosody) -> AsyncIterator[Focus]:
    stand_in = Focus(prosody.component)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def config_js(websocket: str, domain: str = DOMAIN, extra: str = "") -> str:
    return (
        f"var config = {{ hosts: {{ domain: '{domain}', muc: '{MUC}', focus: '{FOCUS}' }},"
        f" websocket: '{websocket}', bosh: '/http-bind' {extra} }};"
    )


Xmpp = Callable[..., Awaitable[XmppResult]]


@pytest.fixture
async def xmpp() -> AsyncIterator[Xmpp]:
    """Run the signalling ladder directly with config.js facts."""
    async with aiohttp.ClientSession(trace_configs=[no_redirects()]) as session:

        async def run(
            websocket: str | None,
            domain: str = DOMAIN,
            timeout: float = 5,
            bosh: str | None = None,
            **settings: bool,
        ) -> XmppResult:
            facts = ConfigFacts(domain=domain, muc=MUC, focus=FOCUS, websocket=websocket, bosh=bosh)
            deadline = asyncio.get_running_loop().time() + timeout
            return await probe_xmpp(
                session, facts, "http://127.0.0.1", XmppSettings(**settings), deadline
            )

        yield run


def reasons(result: XmppResult | ServerReport) -> dict[str, str]:
    return {c.check.value: c.reason.value for c in result.checks}


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


MARKER = "eyJTECRET.TOKEN.MARKER"


@pytest.mark.parametrize(
    "path",
    ["/redirect", "/missing", "/xmpp-websocket"],
)
async def test_token_never_appears_in_results(start_site: StartSite, path: str) -> None:
    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("/redirect")

    site = await start_site(
        jitsi_app(routes={"/redirect": redirect, "/xmpp-websocket": _xmpp_handler(["<bad"])})
    )
    facts = ConfigFacts(
        domain=DOMAIN,
        muc=MUC,
        websocket=f"ws://127.0.0.1:{site.port}{path}",
        bosh=f"http://127.0.0.1:{site.port}{path}",
    )
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + 3
        result = await probe_xmpp(session, facts, site.url, XmppSettings(token=MARKER), deadline)
    assert not result.checks[0].success
    for check in result.checks:
        assert MARKER not in check.detail
    assert any(MARKER in r.query_string for r in site.requests), "the token was sent"


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:99999/x", "ws://127.0.0.1:abc/", "ws://[bad", "ftp://127.0.0.1/x"]
)
async def test_malformed_websocket_urls(xmpp: Xmpp, url: str) -> None:
    result = await xmpp(url)
    assert reasons(result)["signalling"] == "protocol_error"


async def test_server_that_never_finishes_closing(start_site: StartSite, xmpp: Xmpp) -> None:
    """A server that answers everything but never ends the WebSocket."""

    async def stubborn(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("xmpp",), autoclose=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            if "<open" in msg.data:
                await ws.send_str("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
                await ws.send_str(
                    "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                    "<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
                )
            await ws.send_str("<message xmlns='jabber:client'><body>still here</body></message>")
        return ws

    site = await start_site(jitsi_app(routes={"/xmpp-websocket": stubborn}))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await xmpp(f"ws://127.0.0.1:{site.port}/xmpp-websocket", timeout=2)
    assert reasons(result)["signalling"] == "sasl_not_allowed"
    assert loop.time() - t0 < 4, "closing is bounded even when the server never closes"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            [
                b"<body xmlns='http://jabber.org/protocol/httpbind' ",
                b"type='terminate' ",
                b"condition='remote-stream-error'/>",
            ],
            "stream_error",
        ),
        ([b"<?xml version='1.0' encoding='bogus'?><body/>"], "xml_error"),
        ([b"<body xmlns='http://jabber.org/protocol/httpbind'/>"], "xml_error"),
        ([b"<html>proxy error</html>"], "xml_error"),
    ],
    ids=["terminate-in-chunks", "bad-encoding", "no-sid", "not-bosh"],
)
async def test_hostile_bosh(
    start_site: StartSite, xmpp: Xmpp, body: list[bytes], reason: str
) -> None:
    async def bosh(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for chunk in body:
            await resp.write(chunk)
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    app = jitsi_app()
    app.router.add_post("/http-bind", bosh)
    site = await start_site(app)
    result = await xmpp(None, bosh=f"http://127.0.0.1:{site.port}/http-bind", timeout=3)
    assert reasons(result)["signalling"] == reason


def _xmpp_handler(
    frames: list[str | bytes],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A WebSocket endpoint that answers the client's first frame with ``frames``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("xmpp",), max_msg_size=0)
        await ws.prepare(request)
        await ws.receive()
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        async for _ in ws:
            pass
        return ws

    return handle


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing">&lol3;</open>'
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing">&xxe;</open>'
)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([BILLION_LAUGHS], "xml_error"),
        ([EXTERNAL_ENTITY], "xml_error"),
        (["<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'"], "xml_error"),
        (["x" * (50 * 1024 * 1024)], "xml_error"),
        ([b"\x00\x01binary"], "xml_error"),
        (
            [
                "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
                "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            ],
            "stream_error",
        ),
        (["<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"], "connection_closed"),
        ([], "timeout"),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "unclosed",
        "50MB",
        "binary",
        "stream-error",
        "close",
        "silence",
    ],
)
async def test_hostile_frames(
    start_site: StartSite, xmpp: Xmpp, frames: list[str | bytes], reason: str
) -> None:
    site = await start_site(jitsi_app(routes={"/xmpp-websocket": _xmpp_handler(frames)}))
    result = await xmpp(f"ws://127.0.0.1:{site.port}/xmpp-websocket", timeout=2.5)
    assert reasons(result)["signalling"] == reason
    assert result.checks[0].detail


async def _raw_websocket(frame: bytes) -> tuple[asyncio.Server, asyncio.Event]:
    """A WebSocket server written on raw sockets that sends ``frame`` after the handshake."""
    hung_up = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Protocol: xmpp\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        writer.write(frame)
        while await reader.read(65536):
            pass
        hung_up.set()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), hung_up


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        # a text frame that is not UTF-8
        (bytes([0x81, 15]) + b"<open>\xff\xfe</open>", ("xml_error", "connection_closed")),
        # a frame that announces 1000 bytes and never sends them
        (bytes([0x81, 126, 0x03, 0xE8]) + b"<open xmlns=", ("timeout",)),
    ],
    ids=["invalid-utf8", "never-ends"],
)
async def test_broken_frames(xmpp: Xmpp, frame: bytes, reason: tuple[str, ...]) -> None:
    server, hung_up = await _raw_websocket(frame)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await xmpp(f"ws://127.0.0.1:{port}/xmpp-websocket", timeout=2)
        await asyncio.wait_for(hung_up.wait(), 3)  # the probe closed its connection
    finally:
        server.close()
        await server.wait_closed()
    assert reasons(result)["signalling"] in reason


async def test_refused_websocket(xmpp: Xmpp) -> None:
    result = await xmpp("ws://127.0.0.1:9/xmpp-websocket")
    assert reasons(result)["signalling"] == "connect_refused"


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
