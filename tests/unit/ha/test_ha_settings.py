"""The ha block's shape, its password, the lease's timings and the pooler check."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.validate import validate
from monitor.config import ConfigError, load_config, parse_config
from monitor.config.ha import HaConfig
from monitor.ha.settings import HaSettings
from monitor.ha.store import session_problem
from monitor.moodle.database import parse_dsn
from monitor.service import Service, StartError

DSN = "postgresql://jitsi_monitor@127.0.0.1/jm"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "servers.yaml", Path("."))
    return [f"{p.field}: {p.message}" for p in caught.value.problems]


def test_the_block_is_off_by_default_and_takes_its_defaults() -> None:
    assert parse_config("{}", "x", Path(".")).ha is None
    cfg = parse_config(f"ha:\n  database: {DSN}\n", "x", Path("."))
    assert cfg.ha is not None
    assert (cfg.ha.lease, cfg.ha.instance, cfg.ha.shards) == (15.0, None, 1)


@pytest.mark.parametrize(
    ("block", "says"),
    [
        ("database: mysql://u@127.0.0.1/jm", "must be PostgreSQL"),
        ("database: postgresql://u:secret@127.0.0.1/jm", "holds a password"),
        (f"database: {DSN}\n  lease: 1s", "lease must be from 3s to 5m"),
        (f"database: {DSN}\n  shards: 0", "shards must be from 1 to 256"),
        (f"database: {DSN}\n  shards: 257", "shards must be from 1 to 256"),
        (f"database: {DSN}\n  instance: 'a b'", "instance must be"),
        (f"database: {DSN}\n  leese: 3s", "leese"),
    ],
)
def test_a_wrong_block_is_a_clear_problem(block: str, says: str) -> None:
    found = problems(f"ha:\n  {block}\n")
    assert any(says in p for p in found), found
    assert not any("secret" in p for p in found)


def test_the_password_comes_from_its_file_else_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    block = HaConfig(database=DSN, password_file=Path("pw"))
    password = block.password(tmp_path, env={})
    assert password is not None
    assert password.value == "s3cret"
    assert "s3cret" not in repr(password)
    env_only = HaConfig(database=DSN)
    from_env = env_only.password(tmp_path, env={"JITSI_MONITOR_HA_PASSWORD": "e"})
    assert from_env is not None
    assert from_env.value == "e"
    assert env_only.password(tmp_path, env={}) is None
    with pytest.raises(ValueError, match="password_file"):
        HaConfig(database=DSN, password_file=Path("missing")).password(tmp_path, env={})


@pytest.mark.parametrize("lease", [3.0, 15.0, 300.0])
def test_the_leader_stops_before_the_server_frees_its_lock(lease: float) -> None:
    s = HaSettings(parse_dsn(DSN), None, lease, "mon-a")
    assert s.heartbeat < s.deadline < s.idle_session_ms / 1000 == lease
    assert s.tcp_user_ms / 1000 < lease
    assert s.connect_timeout >= 2


def test_a_transaction_pooler_is_named() -> None:
    assert session_problem([7, 7, 7], lock_seen=True) is None
    moved = session_problem([7, 8, 7], lock_seen=True)
    assert moved is not None
    assert "pooler in transaction mode" in moved
    unseen = session_problem([7, 7, 7], lock_seen=False)
    assert unseen is not None
    assert "pooler" in unseen
    shared = session_problem([7, 7, 7], lock_seen=True, shared=True)
    assert shared is not None
    assert "two connections ran in one server session" in shared
    assert "pooler in transaction mode" in shared


def test_validate_names_the_block_and_a_password_file_it_cannot_read(tmp_path: Path) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(f"ha:\n  database: {DSN}\n  lease: 5s\n  instance: mon-a\n")
    done = CliRunner().invoke(validate, [str(config)])
    assert done.exit_code == 0, done.output
    assert "ha: postgresql://jitsi_monitor@127.0.0.1:5432/jm, lease 5s, instance mon-a" in (
        done.output
    )
    config.write_text(f"ha:\n  database: {DSN}\n  password_file: nowhere\n")
    done = CliRunner().invoke(validate, [str(config)])
    assert done.exit_code == 2
    assert "ha.password_file" in done.output


async def test_ha_with_a_static_shard_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(f"shard: 1/2\nha:\n  database: {DSN}\n")
    cfg = load_config(config)
    service = Service(config, cfg, host="127.0.0.1", port=0)
    with pytest.raises(StartError, match="ha and shard"):
        await service.start()
