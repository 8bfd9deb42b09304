"""Cause 4 of issue 13: a state file cannot crash, stall or fool the monitor.

Deep nesting, a planted symbolic link, a FIFO, ``/dev/zero``, huge and
negative counters: each is survived within a second, with a log line, a
fresh start and nothing outside the state's directory touched.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from monitor.metrics import Exposition
from monitor.selector import PoolSettings
from monitor.state import STATE_MAX_BYTES, State, load_state, save_state
from monitor.statefile import (
    UnusableFile,
    move_aside,
    parse_json_bounded,
    read_json_bounded,
    write_json_atomic,
)
from tests.support.hostile import rss_bytes
from tests.support.metrics import report, targets
from tests.support.timing import SLACK


def fresh_state() -> State:
    state = State()
    state.set_targets(targets("a", "b"))
    state.set_pools([PoolSettings(name="p", servers=("a", "b"), hold_down=60.0)])
    return state


def load_bounded(path: Path, seconds: float = 1.0) -> tuple[str | None, float]:
    """load_state in a thread, so that a hang fails the test instead of blocking it."""
    out: list[str | None] = []
    cpu: list[float] = []

    def load() -> None:
        # CPU time of this thread: the loader's own work, whatever else the machine runs
        started = time.thread_time()
        out.append(load_state(fresh_state(), path))
        cpu.append(time.thread_time() - started)

    worker = threading.Thread(target=load)
    worker.daemon = True
    worker.start()
    worker.join(seconds + SLACK)  # a FIFO or a device would block it for good
    assert out, f"load_state did not return within {seconds + SLACK} s"
    elapsed = cpu[0]
    assert elapsed < seconds, f"load_state took {elapsed:.2f} s of CPU"
    return out[0], elapsed


def moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


def test_deep_nesting_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    path.write_text("[" * 200_000)
    before = rss_bytes()
    with caplog.at_level(logging.WARNING):
        problem, _ = load_bounded(path)
    assert problem is None
    assert rss_bytes() - before < 100 * 2**20
    assert not path.exists()
    assert len(moved_aside(path)) == 1
    assert "nested more than 16 levels deep" in caplog.text
    assert "moved aside to state.json.corrupt-" in caplog.text
    # inside strings, brackets are text, not nesting
    assert parse_json_bounded(json.dumps({"a": "[" * 1000}).encode(), 2) == {"a": "[" * 1000}


def test_a_fifo_does_not_block_the_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    os.mkfifo(path)
    with caplog.at_level(logging.WARNING):
        problem, _ = load_bounded(path)
    assert problem is None
    assert "not a regular file (a FIFO)" in caplog.text
    assert not path.exists()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_link_to_a_device_is_refused(
    tmp_path: Path, device: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.symlink_to(device)
    before = rss_bytes()
    with caplog.at_level(logging.WARNING):
        load_bounded(path)
    assert rss_bytes() - before < 100 * 2**20
    assert "symbolic link" in caplog.text
    assert not os.path.lexists(path)
    (aside,) = moved_aside(path)
    assert os.readlink(aside) == device  # the link itself was moved, not its target


def test_a_device_and_a_huge_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnusableFile, match="character device"):
        read_json_bounded(Path("/dev/zero"), 1024, 8)
    big = tmp_path / "big.json"
    with big.open("wb") as out:
        out.truncate(STATE_MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(UnusableFile, match="larger than"):
        read_json_bounded(big, STATE_MAX_BYTES, 8)
    with pytest.raises(UnusableFile, match="not valid JSON"):
        parse_json_bounded(b'{"rtt": NaN}', 8)
    with pytest.raises(UnusableFile, match="not UTF-8"):
        parse_json_bounded(b"\xff\xfe", 8)
    with pytest.raises(FileNotFoundError):
        read_json_bounded(tmp_path / "none.json", 1024, 8)


def test_a_planted_link_is_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = state_dir / "state.json"
    # the old fixed temporary name, and the state file itself, as links to the victim
    (state_dir / ".state.json.tmp").symlink_to(victim)
    path.symlink_to(victim)
    state = fresh_state()
    state.record(report("a"))
    save_state(state, path)
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink()
    assert json.loads(path.read_text())["version"] == 1
    assert (path.stat().st_mode & 0o777) == 0o600
    # no temporary file is left behind, also when the write fails
    with pytest.raises(ValueError, match="JSON compliant"):
        write_json_atomic(path, {"x": float("nan")})
    assert sorted(p.name for p in state_dir.iterdir()) == [".state.json.tmp", "state.json"]


def test_restored_numbers_are_clamped(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    now = time.time()
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "rtt_tcp_connect": {"a": -5, "b": 1e30},
                "rtt_xmpp_ping": {"a": 0.02, "zz": 0.01},
                "pools": {
                    "p": {
                        "current": "a",
                        "hold_until": -1e30,
                        "changed_at": now + 10**9,
                        "failovers": [
                            ["better", -5],
                            ["ineligible", 10**30],
                            ['evil"} 1\n', 3],
                            ["none_eligible", 1e30],
                        ],
                    }
                },
            }
        )
    )
    state = fresh_state()
    assert load_state(state, path) is None
    assert state.rtt_tcp_connect == {}
    assert state.rtt_xmpp_ping == {"a": 0.02}
    pool = state.pool_states["p"]
    assert pool.hold_until == 0.0
    assert pool.changed_at <= time.time()
    assert dict(pool.failovers) == {"better": 0, "ineligible": 2**53}
    text = Exposition(state).render().decode()
    assert "evil" not in text
    assert "e+30" not in text
    assert 'jitsi_pool_failovers_total{location="default",pool="p",reason="better"} 0.0' in text


def test_a_file_that_cannot_be_moved_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert move_aside(tmp_path / "gone.json", "broken") is None
    assert "nor moved aside" in caplog.text
