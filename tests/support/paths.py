"""Where the tests find the project's files, wherever the test module sits."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


LISTS = FIXTURES / "lists"


HANDBOOK = LISTS / "handbook-instances.md"


RANDOM_REDIRECT = LISTS / "random-redirect-jitsi_servers.lst"


SYSTEMD_UNIT = ROOT / "contrib" / "systemd" / "jitsi-monitor.service"
