"""Reading mod_jitsi's servers from a real PostgreSQL and a real MariaDB (issue 24).

The tables and rows are in the shapes of SergioComeron/moodle-mod_jitsi at
3e040231d89c8b732d33a5d7140d0099eba29d49 (``db/install.xml``); the databases are
Debian's, started on loopback by tests/support/databases.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from monitor.moodle.database import (
    MoodleReadError,
    Password,
    SiteReader,
    parse_dsn,
    read_active,
    read_password,
    read_site,
)
from monitor.moodle.servers import MAX_KEY_CHARS, JaasKey, SharedSecret
from tests.support.databases import (
    MONITOR_PASSWORD,
    Database,
    free_port,
    silent_listener,
)

SECRET = "hs256-Secret-Value-7781"
PASSWORD = Password(MONITOR_PASSWORD)


def _private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _three_rows(db: Database) -> tuple[int, int, int]:
    # Two without token (one the public meet.jit.si, as mod_jitsi's upgrade makes it),
    # one self-hosted with JWT: issue 24's "Reading" scene.
    public = db.add_server(name="Meet JitSi default", type=0, domain="meet.jit.si")
    plain = db.add_server(name="Aula Norte", type=0, domain="127.0.0.1:8443")
    jwt = db.add_server(
        name="Jitsi con token", type=1, domain="jitsi.lab.test", appid="moodle", secret=SECRET
    )
    db.set_config("mod_jitsi", "server", str(plain))
    return public, plain, jwt


async def test_three_rows_become_three_servers(db: Database) -> None:
    public, plain, jwt = _three_rows(db)
    site = await read_site(parse_dsn(db.dsn), PASSWORD)
    assert site.problems == ()
    assert site.active_id == plain
    by_id = {s.id: s for s in site.servers}
    assert sorted(by_id) == [public, plain, jwt]
    assert (by_id[public].kind, by_id[public].slug, by_id[public].url) == (
        "public",
        f"meet-jitsi-default-{public}",
        "https://meet.jit.si/",
    )
    assert by_id[public].credentials is None
    # A domain with a port is what the browser loads: probed as such.
    assert (by_id[plain].kind, by_id[plain].url) == ("self_hosted", "https://127.0.0.1:8443/")
    assert by_id[plain].labels == (("moodle_server_id", str(plain)),)
    assert by_id[jwt].kind == "self_hosted"
    assert by_id[jwt].credentials == SharedSecret("moodle", SECRET)
    assert SECRET not in repr(site)


async def test_jaas_row_and_a_type_3_not_provisioned(db: Database) -> None:
    pem = _private_key()
    jaas = db.add_server(
        name="8x8",
        type=2,
        domain="8x8.vc",
        eightbyeightappid="vpaas-magic-cookie-abc",
        eightbyeightapikeyid="vpaas-magic-cookie-abc/k1",
        privatekey=pem,
    )
    gcp = db.add_server(
        name="GCP",
        type=3,
        domain="gcp.lab.test",
        appid="a",
        secret=SECRET,
        provisioningstatus="provisioning",
    )
    site = await read_site(parse_dsn(db.dsn), PASSWORD, url_template="https://{domain}/x/")
    by_id = {s.id: s for s in site.servers}
    assert by_id[jaas].kind == "jaas"
    assert by_id[jaas].credentials == JaasKey(
        "vpaas-magic-cookie-abc", "vpaas-magic-cookie-abc/k1", pem
    )
    assert by_id[jaas].url == "https://8x8.vc/x/"
    assert by_id[gcp].not_provisioned == "provisioning"
    assert pem not in repr(site)
    assert "PRIVATE KEY" not in repr(site)


async def test_an_old_mod_jitsi_table_without_provisioning_still_reads(db: Database) -> None:
    db.create_tables(old=True)
    row = db.add_server(name="Old", type=3, domain="old.lab.test", appid="a", secret="s")
    site = await read_site(parse_dsn(db.dsn), PASSWORD)
    assert [(s.id, s.not_provisioned) for s in site.servers] == [(row, None)]


async def test_bad_rows_are_problems_and_the_good_rows_still_load(db: Database) -> None:
    good = db.add_server(name="Good", type=0, domain="good.lab.test")
    empty = db.add_server(name="Empty", type=0, domain="")
    markup = db.add_server(name="Markup", type=0, domain="<script>x</script>.test")
    spaced = db.add_server(name="Spaced", type=0, domain="meet example.test")
    control = db.add_server(name="Control", type=0, domain="meet.test\x1b[31m")
    unknown = db.add_server(name="Unknown", type=7, domain="seven.lab.test")
    dup = db.add_server(name="Dup", type=0, domain="GOOD.lab.test")
    huge = db.add_server(
        name="Huge",
        type=2,
        domain="huge.lab.test",
        eightbyeightappid="a",
        eightbyeightapikeyid="a/k",
        privatekey="-----BEGIN PRIVATE KEY-----\n" + "A" * (1024 * 1024),
    )
    path = db.add_server(name="Path", type=0, domain="lab.test:8443/jitsi")
    db.set_config("mod_jitsi", "server", str(good))
    site = await read_site(parse_dsn(db.dsn), PASSWORD)
    assert sorted(s.id for s in site.servers) == [good, path]
    assert next(s for s in site.servers if s.id == path).url == "https://lab.test:8443/jitsi/"
    reasons = {p.id: p.reason for p in site.problems}
    assert reasons == {
        empty: "empty_domain",
        markup: "bad_domain",
        spaced: "bad_domain",
        control: "bad_domain",
        unknown: "unknown_type",
        dup: "duplicate_domain",
        huge: "key_too_large",
    }
    details = {p.id: p.detail for p in site.problems}
    assert "space" in details[spaced]
    assert "control character" in details[control]
    assert "\x1b" not in details[control]
    assert f"row {good}" in details[dup]
    assert f"{1024 * 1024 + 28} characters" in details[huge]
    assert str(MAX_KEY_CHARS) in details[huge]
    # The huge key was never fetched: nothing of it is in the read.
    assert "A" * 100 not in repr(site)


async def test_the_active_server_unset_or_pointing_nowhere_is_said(db: Database) -> None:
    db.add_server(name="One", type=0, domain="one.lab.test")
    site = await read_site(parse_dsn(db.dsn), PASSWORD)
    assert site.active_id is None
    assert [p.detail for p in site.problems] == ["mod_jitsi/server is not set"]
    db.set_config("mod_jitsi", "server", "999")
    site = await read_site(parse_dsn(db.dsn), PASSWORD)
    assert site.active_id == 999
    assert [p.detail for p in site.problems] == ["mod_jitsi/server is 999, which no row has"]
    assert await read_active(parse_dsn(db.dsn), PASSWORD) == 999


async def test_a_wrong_password_is_auth_and_never_shown(db: Database) -> None:
    wrong = Password("Wrong-Pass-4471")
    with pytest.raises(MoodleReadError) as caught:
        await read_site(parse_dsn(db.dsn), wrong)
    assert caught.value.reason == "auth"
    assert "Wrong-Pass-4471" not in str(caught.value)
    assert MONITOR_PASSWORD not in str(caught.value)


async def test_a_missing_table_says_mod_jitsi_is_too_old(db: Database) -> None:
    db.drop_servers_table()
    with pytest.raises(MoodleReadError) as caught:
        await read_site(parse_dsn(db.dsn), PASSWORD)
    assert caught.value.reason == "missing_table"
    assert "mdl_jitsi_servers" in caught.value.detail
    assert "mod_jitsi installed" in caught.value.detail


async def test_a_wrong_prefix_is_a_missing_table(db: Database) -> None:
    with pytest.raises(MoodleReadError) as caught:
        await read_site(parse_dsn(db.dsn), PASSWORD, prefix="moodle_")
    # MariaDB answers "denied" for a table without a grant, existing or not.
    assert caught.value.reason == ("missing_table" if db.kind == "postgresql" else "permission")
    assert "'moodle_'" in caught.value.detail


async def test_without_select_the_error_says_which_grant(db: Database) -> None:
    table = f"{db.prefix}jitsi_servers"
    if db.kind == "postgresql":
        db.execute(f"REVOKE SELECT ON {table} FROM jitsi_monitor")
    else:
        db.execute(f"REVOKE SELECT ON moodle.{table} FROM 'jitsi_monitor'@'%'")
    with pytest.raises(MoodleReadError) as caught:
        await read_site(parse_dsn(db.dsn), PASSWORD)
    assert caught.value.reason == "permission"
    assert "GRANT SELECT" in caught.value.detail


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_a_database_that_is_down_is_unreachable(scheme: str) -> None:
    dsn = parse_dsn(f"{scheme}://jitsi_monitor@127.0.0.1:{free_port()}/moodle")
    with pytest.raises(MoodleReadError) as caught:
        await read_site(dsn, PASSWORD, connect_timeout=2, query_timeout=2)
    assert caught.value.reason == "unreachable"


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_a_stalled_database_ends_with_a_timeout(scheme: str) -> None:
    with silent_listener() as port:
        dsn = parse_dsn(f"{scheme}://jitsi_monitor@127.0.0.1:{port}/moodle")
        with pytest.raises(MoodleReadError) as caught:
            await read_site(dsn, PASSWORD, connect_timeout=1, query_timeout=1)
    assert caught.value.reason == "timeout"


async def test_the_reader_keeps_the_last_good_rows(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    _three_rows(db)
    passwords = [PASSWORD]
    reader = SiteReader(parse_dsn(db.dsn), lambda: passwords[-1])
    first = await reader.read()
    assert first is not None
    assert len(first.servers) == 3
    assert reader.ok
    passwords.append(Password("Rotated-Wrong-9120"))
    with caplog.at_level(logging.INFO, logger="monitor.moodle"):
        again = await reader.read()
    assert again is first
    assert not reader.ok
    assert reader.last_error is not None
    assert reader.last_error.reason == "auth"
    passwords.append(PASSWORD)
    with caplog.at_level(logging.INFO, logger="monitor.moodle"):
        third = await reader.read()
    assert third is not None
    assert third is not first
    assert reader.ok
    logged = caplog.text
    assert "keeping the last good rows" in logged
    assert "works again" in logged
    for secret in (SECRET, MONITOR_PASSWORD, "Rotated-Wrong-9120"):
        assert secret not in logged
        assert secret not in repr(reader)


def test_the_password_comes_from_a_file_or_the_environment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    path.chmod(0o600)
    assert read_password(path, {"JITSI_MONITOR_MOODLE_PASSWORD": "env"}) == Password("from-file")
    assert read_password(None, {"JITSI_MONITOR_MOODLE_PASSWORD": "env"}) == Password("env")
    assert read_password(None, {}) is None
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="monitor.moodle"):
        read_password(path, {})
    assert "mode 0644" in caplog.text
    assert "from-file" not in caplog.text
    path.write_bytes(b"\xffbinary-pass")
    with pytest.raises(ValueError, match="not UTF-8") as caught:
        read_password(path, {})
    assert "binary-pass" not in str(caught.value)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_password(fifo, {})
    assert repr(Password("from-file")) == "Password(<hidden>)"
    assert "from-file" not in str(Password("from-file"))


async def test_a_real_database_that_stops_answering_ends_with_a_timeout(db: Database) -> None:
    _three_rows(db)
    db.pause()  # SIGSTOP: the kernel still accepts connections, nothing answers
    try:
        with pytest.raises(MoodleReadError) as caught:
            await read_site(parse_dsn(db.dsn), PASSWORD, connect_timeout=1, query_timeout=1)
    finally:
        db.resume()
    assert caught.value.reason == "timeout"
    site = await read_site(parse_dsn(db.dsn), PASSWORD)
    assert len(site.servers) == 3
