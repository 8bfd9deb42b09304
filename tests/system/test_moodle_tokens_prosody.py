"""mod_jitsi's tokens against a real Prosody that verifies the token's domain (issue 24).

The test token modules (tests/support/prosody_plugins) model Jitsi's
``enable_domain_verification`` with ``muc_mapper_domain_base``: a token whose
``sub`` is neither ``*`` nor the XMPP domain is refused at the join with "Room and
token mismatched". mod_jitsi (SergioComeron/moodle-mod_jitsi at
3e040231d89c8b732d33a5d7140d0099eba29d49, ``build_token``) puts the domain typed
in Moodle in ``sub``, so "JWT ok" with the monitor's own tokens would hide a
refusal every Moodle user meets.
"""

from __future__ import annotations

import pytest

from monitor.config import MonitorConfig
from monitor.model import Check, Reason, ServerReport
from monitor.runner import Runner
from tests.support.prosody import APP_ID, APP_SECRET, FOCUS, VERIFIED, Focus, Prosody
from tests.support.sites import StartSite, jitsi_app, make_config


async def _round(
    prosody: Prosody, start_site: StartSite, monkeypatch: pytest.MonkeyPatch, jwt: str
) -> ServerReport:
    monkeypatch.setenv("PROSODY_TEST_SECRET", APP_SECRET)
    js = (
        f"var config = {{ hosts: {{ domain: '{VERIFIED}', muc: 'conference.{VERIFIED}', "
        f"focus: '{FOCUS}' }}, websocket: '{prosody.websocket}' }};"
    )
    site = await start_site(jitsi_app(js))
    cfg: MonitorConfig = make_config(
        f"servers:\n  - name: aula\n    url: {site.url}\n    timeout: 10s\n"
        f"    jwt:\n      app_id: {APP_ID}\n      secret_env: PROSODY_TEST_SECRET\n"
        "      matrix: valid_only\n"
        f"      signalling_origins: ['http://127.0.0.1:{prosody.http}']\n{jwt}"
    )
    runner = Runner(cfg)
    try:
        return await runner.run_now(cfg.targets()[0])
    finally:
        await runner.close()


def _valid(report: ServerReport) -> tuple[Reason, str]:
    result = report.check(Check.JWT_VALID)
    assert result is not None, report.checks
    return result.reason, result.detail


async def test_the_monitors_own_token_with_sub_star_joins(
    prosody: Prosody, focus: Focus, start_site: StartSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = await _round(prosody, start_site, monkeypatch, "")
    assert _valid(report) == (Reason.OK, "a valid token logs in and joins")


async def test_mod_jitsi_token_with_moodles_domain_is_refused_in_words_an_admin_can_act_on(
    prosody: Prosody, focus: Focus, start_site: StartSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = await _round(
        prosody,
        start_site,
        monkeypatch,
        "      style: mod_jitsi\n      subject: meet.moodle-site.example\n",
    )
    reason, detail = _valid(report)
    assert reason is Reason.JWT_DOMAIN_MISMATCH
    assert "Room and token mismatched" in detail
    assert "'meet.moodle-site.example', the domain typed in Moodle" in detail
    assert f"the XMPP domain is '{VERIFIED}'" in detail
    assert "or turn enable_domain_verification off" in detail
    assert not report.up


async def test_mod_jitsi_token_whose_domain_is_the_xmpp_domain_joins(
    prosody: Prosody, focus: Focus, start_site: StartSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = await _round(
        prosody, start_site, monkeypatch, f"      style: mod_jitsi\n      subject: {VERIFIED}\n"
    )
    assert _valid(report) == (Reason.OK, "a valid token logs in and joins")
