"""The systemd unit in contrib/ is hardened (its settings, read as text;
systemd-analyze checks it in tests/system/test_systemd.py)."""

from __future__ import annotations

import re

from tests.support.paths import SYSTEMD_UNIT


def test_unit_hardening_settings() -> None:
    settings = dict(
        line.split("=", 1)
        for line in SYSTEMD_UNIT.read_text().splitlines()
        if re.match(r"^\w+=", line)
    )
    assert settings["DynamicUser"] == "yes"
    assert settings["StateDirectory"] == "jitsi-monitor"
    assert settings["ProtectSystem"] == "strict"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "serve /etc/jitsi-monitor/servers.yaml" in settings["ExecStart"]
