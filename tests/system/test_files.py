"""Bad files: a config, a secret or a key file that is a FIFO ends with an
error instead of hanging; a secret file that its group or others may read
is named with its mode in a warning, at ``validate`` and when ``serve`` starts.

A hang would be for ever: the subprocess timeouts are guards, not measures.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from monitor.files import UnusableFile, read_regular, read_secret
from tests.support.processes import Served, read_until, start_serve

# Far longer than any run takes, even on a loaded machine; a hang never ends.
GUARD = 60

SECRET = "a-secret-of-the-lab-" + "x" * 20


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )


def _jwt_config(tmp_path: Path, secret_mode: int) -> Path:
    secret = tmp_path / "jwt.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(secret_mode)
    config = tmp_path / "servers.yaml"
    config.write_text(
        "servers:\n"
        "  - name: school\n"
        "    url: http://127.0.0.1:9/\n"
        "    kind: self_hosted\n"
        "    jwt:\n"
        "      app_id: my-lms\n"
        "      secret_file: jwt.secret\n"
    )
    return config


def test_the_reader_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Nobody writes to it: a blocking open would never return.
    with pytest.raises(UnusableFile, match="not a regular file \\(a FIFO\\)"):
        read_regular(fifo, 1000)
    with pytest.raises(UnusableFile, match="a directory"):
        read_regular(tmp_path, 1000)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(UnusableFile, match="larger than 1000 bytes"):
        read_regular(big, 1000)
    link = tmp_path / "link"
    link.symlink_to(big)
    assert read_regular(link, 2000) == b"x" * 1001  # configs and secrets may be links
    with pytest.raises(UnusableFile, match="symbolic link"):
        read_regular(link, 2000, follow=False)  # the state file never is
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "absent", 1000)


@pytest.mark.parametrize("command", ["validate", "check"])
def test_a_config_that_is_a_fifo_is_an_error(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "servers.yaml"
    os.mkfifo(fifo)
    result = _cli(command, str(fifo))
    assert result.returncode == 2
    assert "the file is not a regular file (a FIFO)" in result.stderr


def test_a_secret_file_that_is_a_fifo_is_an_error(tmp_path: Path) -> None:
    config = _jwt_config(tmp_path, 0o600)
    (tmp_path / "jwt.secret").unlink()
    os.mkfifo(tmp_path / "jwt.secret")
    result = _cli("validate", str(config))
    assert result.returncode == 2
    assert "servers[0].jwt.secret_file: cannot read" in result.stderr
    assert "not a regular file (a FIFO)" in result.stderr


async def test_a_reload_of_a_config_turned_fifo_fails_and_keeps_running(
    tmp_path: Path, serve: list[Served]
) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text("servers:\n  - name: one\n    url: http://127.0.0.1:9/\n")
    served = await start_serve(config, serve)
    fifo = tmp_path / "new.yaml"
    os.mkfifo(fifo)
    fifo.replace(config)  # what the next reload finds at the config's path
    served.proc.send_signal(signal.SIGHUP)
    text = await read_until(served.proc.stderr, lambda t: "config reload" in t)
    assert "config reload failed; keeping the running config" in text
    assert "not a regular file (a FIFO)" in text

    def health() -> dict[str, object]:
        with urllib.request.urlopen(served.base + "/healthz", timeout=GUARD) as resp:
            result: dict[str, object] = json.load(resp)
            return result

    answer = await asyncio.to_thread(health)
    assert answer["config_reload_ok"] is False
    assert answer["servers"] == 1


def test_validate_warns_of_a_secret_file_others_may_read(tmp_path: Path) -> None:
    config = _jwt_config(tmp_path, 0o644)
    result = _cli("validate", str(config))
    assert result.returncode == 0, result.stderr
    secret = tmp_path / "jwt.secret"
    assert f"secret file {secret} has mode 0644: its group and others may read it" in (
        result.stderr
    )
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_validate_is_quiet_about_a_private_secret_file(tmp_path: Path, mode: int) -> None:
    config = _jwt_config(tmp_path, mode)
    result = _cli("validate", str(config))
    assert result.returncode == 0, result.stderr
    assert "secret file" not in result.stderr


async def test_serve_warns_at_start_of_a_secret_file_its_group_may_read(
    tmp_path: Path, serve: list[Served]
) -> None:
    config = _jwt_config(tmp_path, 0o640)
    served = await start_serve(config, serve)
    assert f"secret file {tmp_path / 'jwt.secret'} has mode 0640: its group may read it" in (
        served.log
    )


def test_read_secret_warns_once_per_file_and_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "s"
    secret.write_text("x")
    secret.chmod(0o604)
    assert read_secret(secret) == b"x"
    assert read_secret(secret) == b"x"  # a reload reads it again
    warned = [r.getMessage() for r in caplog.records if "secret file" in r.getMessage()]
    assert warned == [f"secret file {secret} has mode 0604: others may read it; "
                      f"it should be 0600 or 0400 (chmod 600 {secret})"]  # fmt: skip


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_a_config_piped_in_is_read_from_standard_input(name: str) -> None:
    # A pipe is a stream that ends: read as standard input, not as a file at a path.
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "validate", name],
        input="servers:\n  - name: one\n    url: http://127.0.0.1:9/\n",
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{name}: valid; 1 server(s): one")
