"""The systemd unit in contrib/: valid for systemd, and hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import SYSTEMD_UNIT

ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze is not installed (Debian's systemd package has it)",
)


def installed_unit(tmp_path: Path) -> Path:
    """The unit as installed, with ExecStart at this checkout's jitsi-monitor
    (verify wants the program to exist; /opt/jitsi-monitor is not here)."""
    program = Path(sys.executable).parent / "jitsi-monitor"
    assert program.exists(), "the project is installed in the test's environment"
    text = SYSTEMD_UNIT.read_text().replace("/opt/jitsi-monitor/bin/jitsi-monitor", str(program))
    path = tmp_path / SYSTEMD_UNIT.name
    path.write_text(text)
    return path


@needs_systemd
def test_unit_verifies(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", str(installed_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify warns about settings it cannot parse but still exits 0: any output is a fault.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", result.stdout
    assert result.stderr.strip() == "", result.stderr


@needs_systemd
def test_unit_exposure_is_low(tmp_path: Path) -> None:
    """systemd's own measure of what the service could do if taken over (0 to 10)."""
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(installed_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    if m is None:
        pytest.skip(f"this systemd-analyze has no offline security check: {result.stderr[:200]}")
    assert float(m.group(1)) <= 2.0, result.stdout
