"""mod_jitsi's rows as monitored servers, the DSN, the moodle: block (issue 24), without a database.

Row shapes from SergioComeron/moodle-mod_jitsi at
3e040231d89c8b732d33a5d7140d0099eba29d49 (``db/install.xml``, ``build_token``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.config.moodle import MoodleConfig
from monitor.moodle.database import Password, SiteReader, parse_dsn
from monitor.moodle.servers import (
    JaasKey,
    RawRow,
    SharedSecret,
    servers_from_rows,
    slug,
)
from monitor.moodle.switch import SwitchCommand

SECRET = "row-secret-8812"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQ-key-body\n-----END PRIVATE KEY-----\n"


def test_kinds_follow_the_types() -> None:
    rows = [
        RawRow(1, "Meet JitSi default", 0, "meet.jit.si"),
        RawRow(2, "Our own", 0, "jitsi.school.test"),
        RawRow(3, "With token", 1, "jwt.school.test", appid="moodle", secret=SECRET),
        RawRow(
            4,
            "JaaS",
            2,
            "8x8.vc",
            eightbyeightappid="vpaas-magic-cookie-1",
            eightbyeightapikeyid="vpaas-magic-cookie-1/k",
            privatekey=KEY,
            privatekey_chars=len(KEY),
        ),
        RawRow(
            5, "GCP", 3, "gcp.school.test", appid="a", secret=SECRET, provisioningstatus="ready"
        ),
        RawRow(6, "Public, with a path", 0, "meet.jit.si/sub"),
    ]
    servers, problems = servers_from_rows(rows, active_id=2)
    assert problems == ()
    assert [(s.id, s.kind) for s in servers] == [
        (1, "public"),
        (2, "self_hosted"),
        (3, "self_hosted"),
        (4, "jaas"),
        (5, "self_hosted"),
        (6, "self_hosted"),
    ]
    assert servers[2].credentials == SharedSecret("moodle", SECRET)
    assert servers[3].credentials == JaasKey("vpaas-magic-cookie-1", "vpaas-magic-cookie-1/k", KEY)
    assert servers[4].not_provisioned is None
    assert servers[5].url == "https://meet.jit.si/sub/"


def test_a_type_1_without_secret_has_no_token_as_in_mod_jitsi() -> None:
    # build_token returns no JWT when appid or secret is empty.
    servers, problems = servers_from_rows([RawRow(1, "x", 1, "a.test", appid="moodle")])
    assert problems == ()
    assert servers[0].credentials is None


@pytest.mark.parametrize("status", ["provisioning", "error", "creating_vm"])
def test_a_type_3_not_ready_is_not_provisioned(status: str) -> None:
    servers, _ = servers_from_rows([RawRow(1, "g", 3, "g.test", provisioningstatus=status)])
    assert servers[0].not_provisioned == status


@pytest.mark.parametrize(
    ("domain", "words"),
    [
        ("meet\x00.test", "control character"),
        ("meet.test\u202e", "control character"),
        ("meet.test\n", "space"),
        ("https://meet.test", "scheme"),
        ("user@meet.test", "'@'"),
        ("meet.test/?a=b", "'?'"),
        ('meet.test"onload="x', "'\"'"),
        ("meet.test:99999", "port"),
        ("-bad-.test", "not a valid host name"),
        ("a" * 300, "longer than 255"),
    ],
)
def test_a_bad_domain_is_named_and_escaped(domain: str, words: str) -> None:
    servers, problems = servers_from_rows(
        [RawRow(9, "x", 0, domain), RawRow(10, "ok", 0, "ok.test")]
    )
    assert [s.id for s in servers] == [10]
    assert [(p.id, p.reason) for p in problems] == [(9, "bad_domain")]
    assert words in problems[0].detail
    assert problems[0].detail.isprintable()


@pytest.mark.parametrize(
    "domain", ["meet.test:8443", "meet.test/jitsi", "[::1]:8443", "bücher.test"]
)
def test_a_domain_with_port_path_or_idn_is_probed_as_such(domain: str) -> None:
    servers, problems = servers_from_rows([RawRow(1, "x", 0, domain)])
    assert problems == ()
    assert servers[0].url == f"https://{domain}/"


def test_a_duplicate_domain_keeps_the_active_row() -> None:
    rows = [RawRow(1, "a", 0, "same.test"), RawRow(2, "b", 0, "SAME.test")]
    servers, problems = servers_from_rows(rows, active_id=2)
    assert [s.id for s in servers] == [2]
    assert [(p.id, p.reason) for p in problems] == [(1, "duplicate_domain")]
    assert "row 2" in problems[0].detail
    servers, _ = servers_from_rows(rows)
    assert [s.id for s in servers] == [1]


def test_jaas_without_its_key_or_with_a_huge_one() -> None:
    rows = [
        RawRow(1, "j", 2, "8x8.vc", eightbyeightappid="a", eightbyeightapikeyid="a/k"),
        RawRow(
            2,
            "k",
            2,
            "big.test",
            eightbyeightappid="a",
            eightbyeightapikeyid="a/k",
            privatekey=None,
            privatekey_chars=1_048_576,
        ),
    ]
    servers, problems = servers_from_rows(rows)
    assert servers == ()
    assert [(p.id, p.reason) for p in problems] == [
        (1, "incomplete_credentials"),
        (2, "key_too_large"),
    ]
    assert "privatekey" in problems[0].detail
    assert "1048576 characters" in problems[1].detail


def test_a_field_longer_than_mod_jitsi_allows_is_not_used_cut() -> None:
    servers, problems = servers_from_rows(
        [RawRow(1, "x", 1, "a.test", appid="a", secret="s" * 256)]
    )
    assert servers == ()
    assert problems[0].reason == "field_too_long"
    assert "secret" in problems[0].detail
    assert "s" * 20 not in problems[0].detail


def test_slugs_are_server_names() -> None:
    assert slug("Aula Norte (2º)", 7) == "aula-norte-2o-7"
    assert slug("<script>", 3) == "script-3"
    assert slug("", 4) == "server-4"
    assert slug("ñ" * 200, 123456) == "n" * 57 + "-123456"
    assert len(slug("x" * 500, 1)) == 64


def test_no_secret_in_any_repr() -> None:
    row = RawRow(1, "x", 2, "8x8.vc", secret=SECRET, privatekey=KEY, privatekey_chars=len(KEY))
    shared = SharedSecret("moodle", SECRET)
    jaas = JaasKey("app", "app/k", KEY)
    servers, _ = servers_from_rows(
        [RawRow(2, "y", 1, "y.test", appid="moodle", secret=SECRET)], active_id=2
    )
    for value in (row, shared, jaas, servers, servers[0]):
        shown = repr(value)
        assert SECRET not in shown
        assert "key-body" not in shown
    assert repr(shared) == "SharedSecret(app_id='moodle', secret=<hidden>)"


def test_the_dsn() -> None:
    assert parse_dsn("postgresql://mon@db.test/moodle").port == 5432
    dsn = parse_dsn("mariadb://mon@db.test:3307/moodle?unix_socket=/run/mysqld/mysqld.sock")
    assert (dsn.kind, dsn.port, dsn.params) == (
        "mysql",
        3307,
        (("unix_socket", "/run/mysqld/mysqld.sock"),),
    )
    assert repr(dsn) == "Dsn('mysql://mon@db.test:3307/moodle')"
    with pytest.raises(ValueError, match="holds a password") as caught:
        parse_dsn("postgresql://mon:Dsn-Pass-1@db.test/moodle")
    assert "Dsn-Pass-1" not in str(caught.value)
    with pytest.raises(ValueError, match="holds a password"):
        parse_dsn("postgresql://mon@db.test/moodle?password=Dsn-Pass-1")
    for bad, words in [
        ("oracle://mon@db/moodle", "must start with postgresql://"),
        ("postgresql://db.test/moodle", "name the user"),
        ("postgresql://mon@db.test/", "name the database"),
        ("mysql://mon@db.test/moodle?sslmode=x", "unknown options"),
        ("postgresql://mon@db.test:99999/moodle", "valid port"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_dsn(bad)


def test_the_moodle_block() -> None:
    block = MoodleConfig.model_validate(
        {
            "database": "postgresql://jitsi_monitor@db.example/moodle",
            "password_file": "/etc/jitsi-monitor/moodle-db-password",
            "interval": "90s",
            "dir": "/var/www/moodle",
            "run_as": "www-data",
        }
    )
    assert (block.prefix, block.url, block.interval, block.pool, block.switch) == (
        "mdl_",
        "https://{domain}/",
        90.0,
        "moodle",
        "when_down",
    )
    assert block.switch_command() == SwitchCommand(
        Path("/usr/bin/php"), Path("/var/www/moodle"), "www-data"
    )
    never = MoodleConfig.model_validate({"database": "mysql://m@db/moodle", "switch": "never"})
    assert never.switch_command() is None


@pytest.mark.parametrize(
    ("block", "words"),
    [
        (
            {"database": "postgresql://m:Cfg-Pass-2@db/moodle", "switch": "never"},
            "holds a password",
        ),
        ({"database": "postgresql://m@db/moodle"}, "needs dir"),
        ({"database": "postgresql://m@db/moodle", "switch": "sometimes", "dir": "/m"}, "when_down"),
        ({"database": "postgresql://m@db/moodle", "switch": "never", "prefix": "x;drop"}, "prefix"),
        (
            {"database": "postgresql://m@db/moodle", "switch": "never", "url": "https://x/"},
            "{domain}",
        ),
        ({"database": "postgresql://m@db/moodle", "switch": "never", "interval": "1s"}, "5s"),
        ({"database": "postgresql://m@db/moodle", "dir": "/m", "php": "php"}, "absolute"),
        ({"database": "postgresql://m@db/moodle", "dir": "/m", "run_as": "a b"}, "user name"),
        ({"database": "postgresql://m@db/moodle", "switch": "never", "pools": "x"}, "Extra"),
    ],
)
def test_a_bad_moodle_block_says_what(block: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MoodleConfig.model_validate(block)
    messages = " ".join(str(e["msg"]) for e in caught.value.errors())
    assert words in messages
    assert "Cfg-Pass-2" not in messages


async def test_an_unreadable_password_file_is_a_read_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def password() -> Password | None:
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "pw"))

    reader = SiteReader(parse_dsn("postgresql://m@127.0.0.1:9/moodle"), password)
    with caplog.at_level(logging.WARNING, logger="monitor.moodle"):
        assert await reader.read() is None
    assert reader.last_error is not None
    assert reader.last_error.reason == "auth"
    assert "password cannot be read" in caplog.text
