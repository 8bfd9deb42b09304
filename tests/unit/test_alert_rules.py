"""The shipped Prometheus alert rules read as data: each alert tested firing
and not firing, each with a severity, a summary and a runbook link, and the
alerts the issue asked for. (promtool, amtool and a running Prometheus and
Alertmanager check them in tests/system/test_alerting.py.)"""

from __future__ import annotations

import re

import yaml

from tests.support.alerting import (
    RULE_TESTS,
    SEVERITIES,
    alerts,
)
from tests.support.paths import ROOT


def test_each_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for rule in alerts():
        assert cases.get(rule["alert"]) == {True, False}, (
            f"{rule['alert']}: {cases.get(rule['alert'])}"
        )


def test_each_alert_says_how_bad_what_and_where_to_read() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    prose = re.sub(r"^```.*?^```", "", runbook, flags=re.MULTILINE | re.DOTALL)
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", prose, re.MULTILINE)}
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    # one entry per alert, under the alert's exact name, and none for an alert that is gone
    assert sorted(re.findall(r"^## (.+)$", prose, re.MULTILINE)) == sorted(names)
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["labels"]["scope"] in {"server", "pool", "monitor"}, name
        notes = rule["annotations"]
        assert notes["summary"].strip(), name
        assert notes["description"].strip(), name
        url, _, anchor = notes["runbook_url"].partition("#")
        assert url.endswith("/docs/runbook.md"), name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"{name}: no section #{anchor} in docs/runbook.md"


def test_alerts_the_issue_asks_for() -> None:
    by_name = {rule["alert"]: rule for rule in alerts()}
    assert by_name["JitsiJwtNotEnforced"]["labels"]["severity"] == "critical"
    assert by_name["JitsiJwtOptional"]["labels"]["severity"] == "critical"
    assert "jwt_optional" in by_name["JitsiJwtOptional"]["expr"]
    assert by_name["JitsiPoolNoEligibleServer"]["labels"]["severity"] == "critical"
    assert by_name["JitsiPoolFailedOver"]["labels"]["severity"] == "info"
    assert by_name["JitsiCertificateExpiring"]["labels"]["severity"] == "critical"
    assert "3 * 86400" in by_name["JitsiCertificateExpiring"]["expr"]
    assert "21 * 86400" in by_name["JitsiCertificateExpiringSoon"]["expr"]
    # down means some minutes of failed probes, never one
    assert by_name["JitsiServerDown"]["for"] in {"3m", "5m", "10m"}


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")
