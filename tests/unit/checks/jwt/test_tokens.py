"""JWT settings, minting, and a valid token on the signalling ladder of a token server."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import aiohttp
import jwt
import pytest

from monitor.checks.carry import Carried, Memory
from monitor.checks.jwt.cases import JwtCase
from monitor.checks.jwt.family import MATRIX_CARRY
from monitor.checks.jwt.result import JwtResult
from monitor.checks.signalling.xmpp import XmppResult, XmppSettings, probe_xmpp
from monitor.checks.signalling.xmpp.transport import check_token_target
from monitor.checks.tokens import mint
from monitor.config import ConfigError, parse_config
from monitor.domain import TokenKey
from monitor.lab import LabOptions, LabServer
from monitor.lab.tokens import TokenPolicy
from monitor.model import Check, ConfigFacts
from monitor.net import NetError
from monitor.views import report_dict
from tests.support.sites import (
    StartSite,
    eventually,
    jitsi_app,
    probe_once,
    rsa_pem,
    target,
    text_handler,
)

SECRET = "school-secret-0123456789abcdef0123456789"


def server_block(url: str, jwt_lines: str, kind: str = "self_hosted") -> str:
    return f"servers:\n  - name: school\n    url: {url}\n    kind: {kind}\n    jwt:\n{jwt_lines}"


def problems(text: str, base: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "s.yaml", base)
    return [str(p) for p in info.value.problems]


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHOOL_JWT_SECRET", SECRET)
    cfg = parse_config(
        server_block(
            "https://meet.school.example",
            "      app_id: my-lms\n      secret_env: SCHOOL_JWT_SECRET\n",
        )
    )
    (target,) = cfg.targets()
    assert target.token_key is not None
    assert target.token_key.key == SECRET
    assert SECRET not in repr(target.token_key)
    assert SECRET not in repr(target)


def test_missing_secret_is_named_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHOOL_JWT_SECRET", raising=False)
    assert problems(
        server_block("https://x", "      app_id: my-lms\n      secret_env: SCHOOL_JWT_SECRET\n")
    ) == ["s.yaml:7: servers[0].jwt.secret_env: environment variable SCHOOL_JWT_SECRET is not set"]


def test_secret_file(tmp_path: Path) -> None:
    (tmp_path / "jwt.secret").write_text(SECRET + "\n")
    cfg = parse_config(
        server_block("https://x", "      app_id: my-lms\n      secret_file: jwt.secret\n"),
        "s.yaml",
        tmp_path,
    )
    (target,) = cfg.targets()
    assert target.token_key is not None
    assert target.token_key.key == SECRET


@pytest.mark.parametrize(
    ("lines", "kind", "message"),
    [
        ("      app_id: a\n", "self_hosted", "HS256 needs exactly one of secret_env, secret_file"),
        ("      app_id: a\n      algorithm: RS256\n", "self_hosted", "needs private_key_file"),
        ("      app_id: a\n      secret_file: nope\n", "self_hosted", "no such file"),
        (
            "      app_id: a\n      lifetime: 5s\n      secret_env: X\n",
            "self_hosted",
            "between 30s",
        ),
        ("      app_id: a\n      algorithm: none\n", "self_hosted", "Input should be"),
        (
            "      app_id: vpaas-magic-cookie-1\n      secret_env: X\n",
            "jaas",
            "JaaS tokens are RS256",
        ),
    ],
)
def test_bad_jwt_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str, kind: str, message: str
) -> None:
    monkeypatch.setenv("X", SECRET)
    found = problems(server_block("https://x", lines, kind), tmp_path)
    assert any(message in p for p in found), found
    assert not any(SECRET in p for p in found)


def test_mint_hmac_claims() -> None:
    key = TokenKey(algorithm="HS256", key=SECRET, issuer="my-lms", subject="meet.school.example")
    token = mint(key, "healthcheck-abc", moderator=False, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    assert (header["typ"], header["alg"]) == ("JWT", "HS256")
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="jitsi", options={"verify_exp": False}
    )
    assert claims["iss"] == "my-lms"
    assert claims["sub"] == "meet.school.example"
    assert claims["room"] == "healthcheck-abc"
    assert claims["moderator"] is False
    assert claims["context"]["user"]["moderator"] is False
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] < claims["iat"]


def test_mint_jaas_claims() -> None:
    pem, private = rsa_pem()
    app = "vpaas-magic-cookie-0123456789abcdef"
    key = TokenKey(
        algorithm="RS256", key=pem, key_id=f"{app}/4f4910", issuer=app, subject=app, jaas=True
    )
    token = mint(key, "*", moderator=True)
    assert jwt.get_unverified_header(token)["kid"] == f"{app}/4f4910"
    claims = jwt.decode(token, private.public_key(), algorithms=["RS256"], audience="jitsi")
    assert (claims["iss"], claims["aud"], claims["sub"]) == ("chat", "jitsi", app)
    assert claims["context"]["user"]["moderator"] == "true"
    assert "moderator" not in claims, "JaaS reads the user's moderator string only"


async def test_token_server_accepts_the_probes_token(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SCHOOL_JWT_SECRET", SECRET)
    lab = LabServer(LabOptions(tokens=TokenPolicy("my-lms", SECRET), moderation="token_moderation"))
    await lab.start()
    caplog.set_level(logging.DEBUG)
    try:
        cfg = parse_config(
            server_block(lab.url, "      app_id: my-lms\n      secret_env: SCHOOL_JWT_SECRET\n")
        )
        report = await probe_once(cfg)
        assert {c.check.value: c.reason.value for c in report.checks}["muc"] == "ok"
        # the room claim matched the probe's room; moderator: false made a member
        assert (report.result(XmppResult).affiliation, report.result(XmppResult).role) == (
            "member",
            "participant",
        )
        shown = json.dumps(report_dict(cfg.targets()[0], report)) + caplog.text
        assert SECRET not in shown

        monkeypatch.setenv("SCHOOL_JWT_SECRET", "a-different-secret-0123456789abcdef01")
        cfg = parse_config(
            server_block(lab.url, "      app_id: my-lms\n      secret_env: SCHOOL_JWT_SECRET\n")
        )
        report = await probe_once(cfg)
        signalling = report.check(Check.SIGNALLING)
        assert signalling is not None
        assert signalling.reason.value == "sasl_not_allowed"
        assert "Invalid signature" in signalling.detail
    finally:
        await lab.stop()


async def matrix_report(
    monkeypatch: pytest.MonkeyPatch,
    options: LabOptions,
    matrix: str = "full",
    kind: str = "self_hosted",
) -> tuple[dict[str, str], dict[str, str], dict[str, bool]]:
    """Probe a token lab server through the runner: reasons, details, matrix cases."""
    monkeypatch.setenv("SCHOOL_JWT_SECRET", SECRET)
    lab = LabServer(options)
    await lab.start()
    try:
        cfg = parse_config(
            server_block(
                lab.url,
                "      app_id: my-lms\n      secret_env: SCHOOL_JWT_SECRET\n"
                f"      settle: 0.2s\n      matrix: {matrix}\n",
                kind,
            )
        )
        report = await probe_once(cfg)
        assert lab.rooms == {}, "no room is left behind"
        await eventually(lambda: lab.sessions == 0)  # every stream is closed
        moderation = report.check(Check.MODERATION)
        if moderation is not None and moderation.reason.value != "skipped":
            # the main ladder and the moderator: true case each sent a leave,
            # and so did a second moderator: false participant when the first
            # came out owner
            second = moderation.reason.value == "moderation_claim_ignored"
            assert len(lab.leaves) == 2 + second, lab.leaves
    finally:
        await lab.stop()
    reasons = {c.check.value: c.reason.value for c in report.checks}
    details = {c.check.value: c.detail for c in report.checks}
    return reasons, details, dict(report.result(JwtResult).cases)


def policy(**kw: object) -> TokenPolicy:
    return TokenPolicy("my-lms", SECRET, **kw)  # type: ignore[arg-type]


async def test_matrix_on_a_well_configured_server(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons, details, cases = await matrix_report(
        monkeypatch, LabOptions(tokens=policy(), moderation="token_moderation")
    )
    assert (reasons["jwt_valid"], reasons["jwt_enforced"], reasons["moderation"]) == (
        "ok",
        "ok",
        "ok",
    )
    assert cases == {
        "valid": True,
        "bad_signature": True,
        "expired": True,
        "no_token": True,
        "other_room": True,
        "moderator_false": True,
        "moderator_true": True,
    }
    assert "member/participant" in details["moderation"]


@pytest.mark.parametrize(
    ("mode", "cause"),
    [
        ("token_users_owner", "focus grants owner to every participant"),
        ("auto_owner", "no moderation module reads the claim"),
    ],
)
async def test_moderator_claim_ignored(
    monkeypatch: pytest.MonkeyPatch, mode: str, cause: str
) -> None:
    reasons, details, cases = await matrix_report(
        monkeypatch,
        LabOptions(tokens=policy(), moderation=mode),  # type: ignore[arg-type]
    )
    assert reasons["moderation"] == "moderation_claim_ignored"
    # a second moderator: false participant tells the likely cause
    assert f"likely cause: {cause}" in details["moderation"], details["moderation"]
    assert "install the token-moderation plugin" in details["moderation"]
    assert cases["moderator_false"] is False
    assert reasons["jwt_enforced"] == "ok"


@pytest.mark.parametrize(
    ("enforcement", "case", "words"),
    [
        ("accept_expired", "expired", "expired"),
        ("accept_any_signature", "bad_signature", "bad signature"),
    ],
)
async def test_broken_enforcement_is_a_security_failure(
    monkeypatch: pytest.MonkeyPatch, enforcement: str, case: str, words: str
) -> None:
    reasons, details, cases = await matrix_report(
        monkeypatch,
        LabOptions(tokens=policy(enforcement=enforcement), moderation="token_moderation"),
    )
    assert reasons["jwt_enforced"] == "jwt_not_enforced"
    assert words in details["jwt_enforced"]
    assert cases[case] is False
    assert reasons["jwt_valid"] == "ok"


async def test_valid_only_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons, _, cases = await matrix_report(
        monkeypatch, LabOptions(tokens=policy()), matrix="valid_only"
    )
    assert reasons["jwt_valid"] == "ok"
    assert "jwt_enforced" not in reasons
    assert "moderation" not in reasons
    assert cases == {"valid": True}


async def test_rejected_token(monkeypatch: pytest.MonkeyPatch) -> None:
    other = TokenPolicy("my-lms", "another-secret-0123456789abcdef0123456")
    reasons, details, cases = await matrix_report(monkeypatch, LabOptions(tokens=other))
    assert reasons["jwt_valid"] == "sasl_not_allowed"
    assert "Invalid signature" in details["jwt_valid"]
    assert (reasons["jwt_enforced"], reasons["moderation"]) == ("skipped", "skipped")
    assert cases == {"valid": False}


async def test_moderation_unknown_when_focus_does_not_create_the_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reasons, details, cases = await matrix_report(
        monkeypatch,
        LabOptions(
            tokens=policy(),
            moderation="token_moderation",
            focus_joins=False,
            restrict_room_creation=False,
        ),
    )
    assert reasons["moderation"] == "moderation_unknown"
    assert "focus did not create the room" in details["moderation"]
    assert "moderator_false" not in cases
    assert "moderator_true" not in cases


@pytest.mark.parametrize(
    ("lines", "kind", "message"),
    [
        (
            "      app_id: a\n      algorithm: RS256\n      private_key_file: k.pem\n",
            "self_hosted",
            "needs key_id",
        ),
        (
            "      app_id: a\n      algorithm: RS256\n      private_key_file: bad.pem\n"
            "      key_id: a/1\n",
            "self_hosted",
            "cannot sign RS256 tokens with this key",
        ),
        (
            "      app_id: vpaas-magic-cookie-1\n      algorithm: RS256\n"
            "      private_key_file: k.pem\n      key_id: vpaas-magic-cookie-1/1\n"
            "      subject: other\n",
            "jaas",
            "AppID as their subject",
        ),
        (
            "      app_id: " + "Z" * 41 + "\n      secret_env: " + "Z" * 41 + "\n",
            "self_hosted",
            "environment variable it names is not set",
        ),
    ],
)
def test_key_problems(tmp_path: Path, lines: str, kind: str, message: str) -> None:
    (tmp_path / "k.pem").write_text(rsa_pem()[0])
    (tmp_path / "bad.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
    )
    found = problems(server_block("https://x", lines, kind), tmp_path)
    assert any(message in p for p in found), found
    assert not any("Z" * 41 in p for p in found)


@pytest.mark.parametrize(
    ("websocket", "origin", "words"),
    [
        ("ws://127.0.0.2:9/xmpp-websocket", "http://127.0.0.1:9", "another host"),
        ("ws://meet.school.example/xmpp-websocket", "https://meet.school.example", "unencrypted"),
    ],
)
async def test_token_only_goes_to_its_server(websocket: str, origin: str, words: str) -> None:
    facts = ConfigFacts(domain="meet.school.example", websocket=websocket)
    async with aiohttp.ClientSession() as session:
        result = await probe_xmpp(session, facts, origin, XmppSettings(token="a.b.c"), 10**9)
    signalling = result.checks[0]
    assert signalling.reason.value == "protocol_error"
    assert words in signalling.detail


def test_mint_rs256_self_hosted_verifies_with_the_public_key() -> None:
    pem, private = rsa_pem()
    key = TokenKey(algorithm="RS384", key=pem, key_id="lms-key-1", issuer="my-lms")
    token = mint(key, "healthcheck-x", moderator=True)
    assert jwt.get_unverified_header(token)["kid"] == "lms-key-1"
    claims = jwt.decode(token, private.public_key(), algorithms=["RS384"], audience="jitsi")
    assert (claims["iss"], claims["room"], claims["moderator"]) == ("my-lms", "healthcheck-x", True)
    _, other = rsa_pem()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_key(), algorithms=["RS384"], audience="jitsi")


def test_claims_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X", SECRET)
    cfg = parse_config(
        server_block(
            "https://x",
            "      app_id: my-lms\n      secret_env: X\n      user_name: Moodle probe\n"
            "      user_email: ops@school.example\n      features: {recording: false}\n"
            "      claims: {tenant: school, group: staff}\n",
        )
    )
    (target,) = cfg.targets()
    assert target.token_key is not None
    claims = jwt.decode(mint(target.token_key, "r"), SECRET, algorithms=["HS256"], audience="jitsi")
    assert claims["context"]["user"]["name"] == "Moodle probe"
    assert claims["context"]["user"]["email"] == "ops@school.example"
    assert claims["context"]["features"] == {"recording": False}
    assert (claims["tenant"], claims["group"], claims["room"]) == ("school", "staff", "r")
    found = problems(
        server_block(
            "https://x", "      app_id: a\n      secret_env: X\n      claims: {room: '*'}\n"
        )
    )
    assert any("the monitor sets room itself" in p for p in found), found


async def test_a_token_never_goes_to_another_port_of_the_host(
    monkeypatch: pytest.MonkeyPatch, start_site: StartSite
) -> None:
    """config.js points signalling at another port of the server's host: nothing
    is sent there, unless that origin is listed in jwt.signalling_origins."""
    monkeypatch.setenv("SCHOOL_JWT_SECRET", SECRET)
    collector = await start_site(jitsi_app(routes={"/xmpp-websocket": text_handler("hello")}))
    js = (
        "var config = { hosts: { domain: 'meet.school.example' }, "
        f"websocket: 'ws://127.0.0.1:{collector.port}/xmpp-websocket' }};"
    )
    page = await start_site(jitsi_app(js))
    jwt_lines = "      app_id: my-lms\n      secret_env: SCHOOL_JWT_SECRET\n"
    report = await probe_once(parse_config(server_block(page.url, jwt_lines)))
    signalling = report.check(Check.SIGNALLING)
    assert signalling is not None
    assert signalling.reason.value == "protocol_error"
    assert f"another port of the host (http://127.0.0.1:{collector.port})" in signalling.detail
    assert collector.requests == [], "nothing reached the other port"

    # the same origin, listed: the token goes there (the test's collector is no XMPP server)
    listed = f"      signalling_origins: ['ws://127.0.0.1:{collector.port}']\n"
    await probe_once(parse_config(server_block(page.url, jwt_lines + listed)))
    assert any("token=" in r.query_string for r in collector.requests)


@pytest.mark.parametrize(
    ("url", "origins", "words"),
    [
        ("wss://meet.example/xmpp-websocket", ("https://meet.example",), None),
        ("wss://meet.example:443/x", ("https://MEET.example:443",), None),
        ("wss://meet.example:5443/x", ("https://meet.example",), "another port of the host"),
        ("ws://meet.example/x", ("https://meet.example",), "unencrypted"),
        ("wss://other.example/x", ("https://meet.example",), "another host"),
        # the page's redirect target, and a listed signalling origin
        ("wss://www.example/x", ("https://meet.example", "https://www.example:443"), None),
        ("wss://xmpp.example:5443/x", ("https://meet.example", "https://xmpp.example:5443"), None),
        ("https://meet.example:8443/http-bind", ("https://meet.example",), "another port"),
        ("ws://[bad/x", ("https://meet.example",), "malformed"),
    ],
)
def test_token_target(url: str, origins: tuple[str, ...], words: str | None) -> None:
    if words is None:
        check_token_target(url, origins)
        return
    with pytest.raises(NetError) as info:
        check_token_target(url, origins)
    assert info.value.reason.value == "protocol_error"
    assert words in info.value.detail


async def test_public_server_with_tokens_says_what_it_did(monkeypatch: pytest.MonkeyPatch) -> None:
    """kind: public does not join: the details say so, and keep the refusals seen."""
    reasons, details, cases = await matrix_report(
        monkeypatch, LabOptions(tokens=policy(), moderation="token_moderation"), kind="public"
    )
    assert reasons["jwt_valid"] == "ok"
    assert details["jwt_valid"] == (
        "a valid token logs in (joining is off for this server, so no join was tried)"
    )
    assert reasons["jwt_enforced"] == "ok"
    assert details["jwt_enforced"] == (
        "refused at login: bad signature, expired, no token; a token for another room is "
        "not tried: joining is off for this server"
    )
    assert reasons["moderation"] == "skipped"
    assert "joining is off for this server" in details["moderation"]
    assert cases == {"valid": True, "bad_signature": True, "expired": True, "no_token": True}


def test_jwt_settings_of_the_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X", SECRET)
    cfg = parse_config(
        server_block(
            "https://x",
            "      app_id: a\n      secret_env: X\n      guests: allowed\n"
            "      matrix_interval: 30m\n"
            "      signalling_origins: ['wss://XMPP.x:5443', 'https://xmpp.x:5443/']\n",
        )
    )
    (target,) = cfg.targets()
    key = target.token_key
    assert key is not None
    assert (key.guests_allowed, key.matrix_interval) == (True, 1800.0)
    assert key.signalling_origins == ("https://xmpp.x:5443",)
    default = parse_config(server_block("https://x", "      app_id: a\n      secret_env: X\n"))
    key = default.targets()[0].token_key
    assert key is not None
    assert (key.guests_allowed, key.matrix_interval, key.signalling_origins) == (False, 900.0, ())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("guests: sometimes", "Input should be 'forbidden' or 'allowed'"),
        ("matrix_interval: 25h", "between 0s (every round) and 24h"),
        ("signalling_origins: ['wss://x/xmpp-websocket']", "is not an origin"),
        ("signalling_origins: ['ftp://x']", "is not an origin"),
        ("signalling_origins: ['https://user:pw@x']", "is not an origin"),
    ],
)
def test_bad_matrix_settings(monkeypatch: pytest.MonkeyPatch, line: str, message: str) -> None:
    monkeypatch.setenv("X", SECRET)
    found = problems(
        server_block("https://x", f"      app_id: a\n      secret_env: X\n      {line}\n")
    )
    assert any(message in p for p in found), found


def test_matrix_memory_forgets() -> None:
    key = TokenKey(algorithm="HS256", key=SECRET, matrix_interval=600.0)
    server = target("https://meet.example/", token_key=key)
    facts = ConfigFacts(domain="meet.example", websocket="wss://meet.example/xmpp-websocket")
    memory: Memory[object] = Memory(MATRIX_CARRY)
    assert memory.due(server, facts, now=1000.0)
    memory.keep(server, facts, Carried(1000.0, (), ((JwtCase.EXPIRED, True),)))
    assert not memory.due(server, facts, now=1500.0)
    # due half a probe interval early, so jitter does not cost a round
    assert memory.due(server, facts, now=1000.0 + 600 - 30)
    # the schedule's timeout, an on-demand probe's checks: the same verdicts
    trimmed = dataclasses.replace(server, timeout=3.0, groups=frozenset({"jwt"}))
    assert memory.last(trimmed, facts, now=1500.0) is not None
    # no longer carried after twice the interval
    assert memory.last(server, facts, now=1000.0 + 1201) is None
    assert len(memory) == 0
    # forgotten when config.js or the server's settings change
    for changed_target, changed_facts in (
        (server, dataclasses.replace(facts, anonymousdomain="guest.meet.example")),
        (dataclasses.replace(server, join=False), facts),
        (
            dataclasses.replace(server, token_key=dataclasses.replace(key, guests_allowed=True)),
            facts,
        ),
    ):
        memory.keep(server, facts, Carried(1000.0, (), ()))
        assert memory.last(changed_target, changed_facts, now=1001.0) is None
    # a server without tokens, or with matrix: valid_only, never runs it
    assert not memory.due(target("https://meet.example/"), facts)
    only = dataclasses.replace(server, token_key=dataclasses.replace(key, matrix=False))
    assert not memory.due(only, facts)
