"""``jwt.style: mod_jitsi`` in servers.yaml and the ``moodle:`` block in MonitorConfig."""

from __future__ import annotations

import json

import pytest

from monitor.checks.tokens import mint
from monitor.config import ConfigError, parse_config

SERVER = """
servers:
  - name: aula
    url: https://meet.example.org:8443/jitsi/
    jwt:
      app_id: moodle
      secret_env: AULA_SECRET
      style: mod_jitsi
{more}
"""


def _payload(token: str) -> dict[str, object]:
    import base64

    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_mod_jitsi_style_signs_as_moodle_with_the_urls_domain_as_sub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AULA_SECRET", "s" * 32)
    (target,) = parse_config(SERVER.format(more=""), "t.yaml").targets()
    key = target.token_key
    assert key is not None
    assert (key.style, key.subject, key.lifetime) == (
        "mod_jitsi",
        "meet.example.org:8443/jitsi",
        86400,
    )
    claims = _payload(mint(key, "room1"))
    assert list(claims) == ["context", "aud", "iss", "sub", "room", "exp", "moderator"]


def test_subject_overrides_and_wrong_algorithms_or_claims_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AULA_SECRET", "s" * 32)
    (target,) = parse_config(
        SERVER.format(more="      subject: meet.example.org"), "t.yaml"
    ).targets()
    assert target.token_key is not None
    assert target.token_key.subject == "meet.example.org"
    with pytest.raises(ConfigError, match="mod_jitsi signs HS256"):
        parse_config(SERVER.format(more="      algorithm: HS512"), "t.yaml")
    with pytest.raises(ConfigError, match="drop features, claims"):
        parse_config(SERVER.format(more="      claims: {tenant: x}"), "t.yaml")


def test_the_moodle_block_is_part_of_the_config() -> None:
    cfg = parse_config(
        "moodle:\n  database: mariadb://mon@127.0.0.1/moodle\n  switch: never\n", "t.yaml"
    )
    assert cfg.moodle is not None
    assert cfg.moodle.pool == "moodle"
    with pytest.raises(ConfigError, match="needs dir"):
        parse_config("moodle:\n  database: postgresql://mon@127.0.0.1/moodle\n", "t.yaml")
