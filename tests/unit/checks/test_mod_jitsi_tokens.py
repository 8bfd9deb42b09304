"""Tokens shaped as mod_jitsi's (SergioComeron/moodle-mod_jitsi at
3e040231d89c8b732d33a5d7140d0099eba29d49, classes/local/session.php build_token)."""

from __future__ import annotations

import base64
import json

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from monitor.checks.mod_jitsi_tokens import mint_mod_jitsi, session_room
from monitor.checks.tokens import mint
from monitor.domain import TokenKey

NOW = 1_800_000_000


def _part(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _hs_key(**changes: object) -> TokenKey:
    fields: dict[str, object] = {
        "algorithm": "HS256",
        "key": "s3cret/with+chars-long-enough-for-hs256",
        "issuer": "moodle",
        "subject": "meet.example:8443/jitsi",
        "style": "mod_jitsi",
        "user_name": "Ana Ñúñez",
    }
    fields.update(changes)
    return TokenKey(**fields)  # type: ignore[arg-type]


def test_room_is_normalized_as_mod_jitsi_does() -> None:
    assert session_room("Física 1") == "Fsica1"
    assert session_room("mat101.42.álgebra-lineal") == "mat10142lgebra-lineal"
    assert session_room("a_b-C9") == "a_b-C9"


def test_hs256_header_and_claims_in_mod_jitsi_order_and_bytes() -> None:
    token = mint_mod_jitsi(_hs_key(), "mat10142", moderator=True, now=NOW)
    assert _part(token, 0) == b'{"kid":"jitsi/custom_key_name","typ":"JWT","alg":"HS256"}'
    payload = _part(token, 1).decode()
    assert payload == (
        '{"context":{"user":{"affiliation":"owner","avatar":"",'
        '"name":"Ana \\u00d1\\u00fa\\u00f1ez","email":null,"id":"","moderator":true},'
        '"group":""},"aud":"jitsi","iss":"moodle",'
        f'"sub":"meet.example:8443/jitsi","room":"mat10142","exp":{NOW + 86400},"moderator":true}}'
    )
    claims = jwt.decode(
        token, "s3cret/with+chars-long-enough-for-hs256", algorithms=["HS256"], audience="jitsi"
    )
    assert "iat" not in claims
    assert "nbf" not in claims


def test_member_token_differs_only_in_affiliation_and_moderator() -> None:
    owner = json.loads(_part(mint_mod_jitsi(_hs_key(), "r", moderator=True, now=NOW), 1))
    member = json.loads(_part(mint_mod_jitsi(_hs_key(), "r", moderator=False, now=NOW), 1))
    assert member["context"]["user"]["affiliation"] == "member"
    assert member["moderator"] is False
    assert member["context"]["user"]["moderator"] is False
    member["context"]["user"]["affiliation"] = "owner"
    member["moderator"] = member["context"]["user"]["moderator"] = True
    assert member == owner


def test_mint_follows_the_style_of_the_key() -> None:
    token = mint(_hs_key(), "room1", now=NOW)
    assert json.loads(_part(token, 0))["kid"] == "jitsi/custom_key_name"
    plain = mint(_hs_key(style="monitor"), "room1", now=NOW)
    assert "iat" in json.loads(_part(plain, 1))


def test_jaas_rs256_escapes_slashes_and_signs_pkcs1() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key = TokenKey(
        algorithm="RS256",
        key=pem,
        key_id="vpaas-magic-cookie-abc/4f2e",
        subject="vpaas-magic-cookie-abc",
        jaas=True,
        style="mod_jitsi",
        user_name="Bea",
    )
    token = mint_mod_jitsi(key, "anything", moderator=False, now=NOW)
    assert _part(token, 0) == b'{"kid":"vpaas-magic-cookie-abc\\/4f2e","typ":"JWT","alg":"RS256"}'
    payload = _part(token, 1).decode()
    assert payload.startswith(
        f'{{"iss":"chat","aud":"jitsi","exp":{NOW + 86400},"nbf":{NOW - 10},"room":"*",'
        '"sub":"vpaas-magic-cookie-abc","context":{"user":{"moderator":false,'
    )
    assert '"features":{"recording":false,"livestreaming":false,"transcription":false,' in payload
    claims = jwt.decode(
        token, private.public_key(), algorithms=["RS256"], audience="jitsi", leeway=10**10
    )
    assert claims["room"] == "*"
    assert "affiliation" not in claims["context"]["user"]
