"""The Moodle site's series (monitor/metrics/moodle.py): none without the block."""

from __future__ import annotations

from monitor.metrics.moodle import MOODLE_METRICS, moodle_lines
from monitor.moodle.status import MoodleStatus

LO = [("location", "eu")]


def test_no_block_no_lines() -> None:
    assert set(moodle_lines(None, LO).values()) == {""}


def test_the_active_server_reads_and_switches() -> None:
    status = MoodleStatus("postgresql://mon@db:5432/moodle", "moodle", "when_down")
    status.active_id, status.active_server = 7, "aula-7"
    status.ok, status.last_success, status.read_errors_total = False, 1000.0, 3
    status.switches["forced"] += 1
    out = moodle_lines(status, LO)
    assert set(out) == set(MOODLE_METRICS)
    assert out["jitsi_moodle_active_server"] == (
        'jitsi_moodle_active_server{location="eu",moodle_server_id="7",pool="moodle",'
        'server="aula-7"} 1.0\n'
    )
    assert out["jitsi_moodle_read_successful"].endswith("} 0.0\n")
    assert 'result="forced"} 1.0\n' in out["jitsi_moodle_switches_total"]
    assert 'result="done"} 0.0\n' in out["jitsi_moodle_switches_total"]
    assert out["jitsi_moodle_read_errors_total"].endswith("} 3.0\n")
    assert "postgresql" not in "".join(out.values())
