"""The lab: simulated Jitsi servers, each step and each injected fault, and its command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import jwt
import pytest

from monitor.checks.signalling.xmpp import XmppResult, XmppSettings, probe_xmpp
from monitor.checks.web.probe import WebResult
from monitor.config import parse_config
from monitor.lab import LabServer, servers_yaml
from monitor.lab.tokens import TokenPolicy
from monitor.model import ConfigFacts, ServerReport
from monitor.runner import Runner
from tests.support.lab import FAULT_CASES
from tests.support.sites import eventually

Probe = Callable[..., Awaitable[ServerReport]]


async def probe(servers: list[LabServer], timeout: str = "3s") -> list[ServerReport]:
    cfg = parse_config(servers_yaml(servers, timeout=timeout))
    runner = Runner(cfg)
    try:
        return [await runner.run_now(t) for t in cfg.targets()]
    finally:
        await runner.close()


def reasons(report: ServerReport) -> dict[str, str]:
    return {c.check.value: c.reason.value for c in report.checks}


@pytest.mark.parametrize("shape", ["object", "ssi", "assignments"])
async def test_every_step_passes(lab: Callable[..., Awaitable[LabServer]], shape: str) -> None:
    server = await lab(shape=shape)
    (report,) = await probe([server])
    assert reasons(report) == {
        "web": "ok",
        "configjs": "ok",
        "external_api": "ok",
        "embed": "ok",
        "signalling": "ok",
        "focus": "ok",
        "muc": "ok",
    }
    assert report.result(WebResult).config is not None
    assert report.result(WebResult).config.domain == "meet.lab"
    # jicofo's auto-owner: the probe is the first participant
    assert (report.result(XmppResult).affiliation, report.result(XmppResult).role) == (
        "owner",
        "moderator",
    )
    assert len(server.leaves) == 1, "the probe sent its leave presence"
    assert server.rooms == {}, "the room is gone"


async def test_tls_end_to_end(lab: Callable[..., Awaitable[LabServer]]) -> None:
    server = await lab(tls=True)
    assert server.url.startswith("https://")
    (report,) = await probe([server])
    assert report.up, report.checks
    assert report.result(WebResult).cert is not None
    assert [p.name for p in report.result(WebResult).http_phases][:3] == [
        "resolve",
        "connect",
        "tls",
    ]
    assert report.result(WebResult).config is not None
    assert report.result(WebResult).config.websocket is not None
    assert report.result(WebResult).config.websocket.startswith("wss://")


async def test_embed_limit(lab: Callable[..., Awaitable[LabServer]]) -> None:
    server = await lab(disable_iframe_api=True)
    (report,) = await probe([server])
    assert report.result(WebResult).embed_limit_seconds == 300
    assert report.up


async def test_websocket_needs_the_xmpp_subprotocol(
    lab: Callable[..., Awaitable[LabServer]],
) -> None:
    server = await lab()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(f"ws://127.0.0.1:{server.port}/xmpp-websocket")
    assert info.value.status == 501


@pytest.mark.parametrize(("fault", "expected"), FAULT_CASES)
async def test_faults(
    lab: Callable[..., Awaitable[LabServer]], fault: str, expected: dict[str, str]
) -> None:
    server = await lab(tls=True)
    await server.set_fault(fault)  # type: ignore[arg-type]
    (report,) = await probe([server], timeout="1.5s")
    got = reasons(report)
    assert {k: got.get(k) for k in expected} == expected
    assert not report.up


async def test_fault_can_be_lifted(lab: Callable[..., Awaitable[LabServer]]) -> None:
    server = await lab()
    await server.set_fault("refuse")
    (down,) = await probe([server])
    await server.set_fault("none")
    (up,) = await probe([server])
    assert (down.up, up.up) == (False, True)


async def test_latency_is_measured(lab: Callable[..., Awaitable[LabServer]]) -> None:
    server = await lab(latency=0.05)
    (report,) = await probe([server])
    processing = report.result(WebResult).phase_seconds("processing")
    assert processing is not None
    assert processing >= 0.05
    assert report.result(XmppResult).ping_rtt is not None
    assert report.result(XmppResult).ping_rtt >= 0.05


async def test_a_cancelled_probe_still_leaves_the_room(
    lab: Callable[..., Awaitable[LabServer]],
) -> None:
    """Cancelled mid-join (as at shutdown), the probe still sends its leave."""
    server = await lab(latency=0.2)
    cfg = parse_config(servers_yaml([server], timeout="5s"))
    runner = Runner(cfg)
    try:
        task = asyncio.create_task(runner.run_now(cfg.targets()[0]))
        # the join has reached the server: an occupant besides focus
        await eventually(lambda: any(len(r.occupants) > 1 for r in server.rooms.values()))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: len(server.leaves) == 1)  # a leave, not a dropped stream
        assert server.rooms == {}
    finally:
        await runner.close()


SECRET = "lab-secret-for-tests-0123456789abcdef"


def token(**claims: object) -> str:
    now = int(time.time())
    body: dict[str, object] = {
        "iss": "lab-app",
        "aud": "jitsi",
        "sub": "meet.lab",
        "room": "*",
        "exp": now + 300,
        "nbf": now - 10,
    }
    body.update(claims)
    secret = str(body.pop("secret", SECRET))
    return jwt.encode(body, secret, algorithm="HS256")


async def signalling(server: LabServer, tok: str | None) -> XmppResult:
    facts = ConfigFacts(domain="meet.lab", muc=server.muc, websocket=server.websocket)
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + 3
        return await probe_xmpp(session, facts, server.url, XmppSettings(token=tok), deadline)


@pytest.mark.parametrize(
    ("mode", "moderator", "expected"),
    [
        ("token_moderation", False, ("member", "participant")),
        ("token_moderation", True, ("owner", "moderator")),
        ("token_users_owner", False, ("owner", "moderator")),
    ],
)
async def test_token_moderation_modes(
    lab: Callable[..., Awaitable[LabServer]],
    mode: str,
    moderator: bool,
    expected: tuple[str, str],
) -> None:
    server = await lab(tokens=TokenPolicy("lab-app", SECRET), moderation=mode)
    result = await signalling(server, token(moderator=moderator))
    assert [c.reason.value for c in result.checks] == ["ok", "ok", "ok"]
    assert (result.affiliation, result.role) == expected


@pytest.mark.parametrize(
    ("claims", "text"),
    [
        (lambda now: {"secret": "another-secret-0123456789abcdef012"}, "Invalid signature"),
        (lambda now: {"exp": now - 60}, "Not acceptable by exp"),
        (lambda now: {"nbf": now + 600}, "Not acceptable by nbf"),
        (lambda now: {"iss": "someone-else"}, "Invalid issuer ('iss' claim)"),
    ],
)
async def test_tokens_are_enforced(
    lab: Callable[..., Awaitable[LabServer]],
    claims: Callable[[int], dict[str, object]],
    text: str,
) -> None:
    # Times are taken when the test runs, not when it is collected: a long
    # run (the whole suite is minutes) would otherwise let nbf pass.
    server = await lab(tokens=TokenPolicy("lab-app", SECRET))
    result = await signalling(server, token(**claims(int(time.time()))))
    assert result.checks[0].reason.value == "sasl_not_allowed"
    assert text in result.checks[0].detail


async def test_no_token_is_refused(lab: Callable[..., Awaitable[LabServer]]) -> None:
    server = await lab(tokens=TokenPolicy("lab-app", SECRET))
    result = await signalling(server, None)
    assert "token required" in result.checks[0].detail


async def test_token_for_another_room(lab: Callable[..., Awaitable[LabServer]]) -> None:
    server = await lab(tokens=TokenPolicy("lab-app", SECRET))
    result = await signalling(server, token(room="someone-elses-class"))
    assert [c.reason.value for c in result.checks] == ["ok", "ok", "join_refused"]
    assert "Room and token mismatched" in result.checks[2].detail


async def test_enforcement_broken_on_purpose(lab: Callable[..., Awaitable[LabServer]]) -> None:
    server = await lab(tokens=TokenPolicy("lab-app", SECRET, enforcement="accept_expired"))
    result = await signalling(server, token(exp=int(time.time()) - 60))
    assert result.checks[0].reason.value == "ok", "this lab server accepts expired tokens"
