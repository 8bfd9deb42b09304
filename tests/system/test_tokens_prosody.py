"""Token checks against a real Prosody with the test token modules: the guest
policy, the cadence of the matrix, and BOSH sessions that end cleanly.

Prosody's own log counts what a round costs the server (``LogCounts``): the
streams it opened, the BOSH sessions it saw created and ended by the client,
the joins tried on the token MUCs; the focus stand-in counts conference
requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass

import pytest

from monitor.checks.jwt.result import JwtResult
from monitor.checks.jwt.view import COLUMNS as JWT_COLUMNS
from monitor.checks.signalling.xmpp import XmppResult
from monitor.checks.signalling.xmpp.bosh import BoshTransport
from monitor.config import MonitorConfig
from monitor.metrics import Exposition
from monitor.model import Check, ServerReport
from monitor.runner import Runner
from monitor.state import State
from tests.support.prosody import (
    APP_ID,
    APP_SECRET,
    DOMAIN,
    FOCUS,
    OPEN,
    TOKEN,
    TOKEN_MOD,
    Focus,
    LogCounts,
    Prosody,
)
from tests.support.sites import StartSite, eventually, jitsi_app, make_config


@dataclass
class Site:
    prosody: Prosody
    start_site: StartSite

    async def config(
        self,
        domain: str,
        *,
        bosh: bool = False,
        anonymousdomain: str | None = None,
        jwt: str = "",
        server: str = "",
    ) -> MonitorConfig:
        """A page whose config.js points at Prosody's ``domain``, and a config for it."""
        prosody = self.prosody
        guest = f", anonymousdomain: '{anonymousdomain}'" if anonymousdomain else ""
        where = f"bosh: '{prosody.bosh}'" if bosh else f"websocket: '{prosody.websocket}'"
        js = (
            f"var config = {{ hosts: {{ domain: '{domain}', muc: 'conference.{domain}', "
            f"focus: '{FOCUS}'{guest} }}, {where} }};"
        )
        site = await self.start_site(jitsi_app(js))
        return make_config(
            f"servers:\n  - name: school\n    url: {site.url}\n    timeout: 10s\n{server}"
            f"    jwt:\n      app_id: {APP_ID}\n      secret_env: PROSODY_TEST_SECRET\n"
            "      settle: 0.3s\n"
            # Prosody listens on another port than the page
            f"      signalling_origins: ['http://127.0.0.1:{prosody.http}']\n{jwt}"
        )


@pytest.fixture
def site(prosody: Prosody, start_site: StartSite, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("PROSODY_TEST_SECRET", APP_SECRET)
    return Site(prosody, start_site)


@dataclass
class Round:
    report: ServerReport
    cost: LogCounts
    conferences: int


async def run_rounds(
    runner: Runner, cfg: MonitorConfig, prosody: Prosody, focus: Focus, n: int
) -> list[Round]:
    """``n`` ladders of the config's server with ``runner``, as a schedule runs them."""
    done = []
    for _ in range(n):
        before, asked = prosody.counts(), len(focus.requests)
        report = await runner.run_now(cfg.targets()[0])
        await asyncio.sleep(0.2)  # Prosody writes its last lines
        done.append(Round(report, prosody.counts() - before, len(focus.requests) - asked))
    return done


async def rounds(cfg: MonitorConfig, prosody: Prosody, focus: Focus, n: int) -> list[Round]:
    runner = Runner(cfg)
    try:
        return await run_rounds(runner, cfg, prosody, focus, n)
    finally:
        await runner.close()


def reasons(report: ServerReport) -> dict[str, str]:
    return {c.check.value: c.reason.value for c in report.checks}


def detail(report: ServerReport, check: Check) -> str:
    result = report.check(check)
    assert result is not None
    return result.detail


# -- guests: a declared policy ---------------------------------------------------


async def test_open_token_server_fails_with_jwt_optional(
    site: Site, prosody: Prosody, focus: Focus
) -> None:
    """allow_empty_token = true: anyone logs in and joins without a token."""
    cfg = await site.config(OPEN)
    (first,) = await rounds(cfg, prosody, focus, 1)
    report = first.report
    assert reasons(report)["jwt_valid"] == "ok"
    assert reasons(report)["jwt_enforced"] == "jwt_optional", report.checks
    assert f"logs in on {OPEN} and joins a room" in detail(report, Check.JWT_ENFORCED)
    assert dict(report.result(JwtResult).cases)["no_token"] is False
    assert "TOKEN OPTIONAL" in JWT_COLUMNS[0].cell(report)
    # the token-less client joined the moderator's room: one join more, no conference more
    assert (first.cost.streams, first.conferences, first.cost.joins) == (6, 2, 4)


async def test_open_token_server_with_guests_allowed_is_information(
    site: Site, prosody: Prosody, focus: Focus
) -> None:
    cfg = await site.config(OPEN, jwt="      guests: allowed\n")
    (first,) = await rounds(cfg, prosody, focus, 1)
    report = first.report
    assert reasons(report)["jwt_enforced"] == "ok", report.checks
    assert "guests are allowed (jwt.guests)" in detail(report, Check.JWT_ENFORCED)
    assert dict(report.result(JwtResult).cases)["no_token"] is True
    assert "guests" in JWT_COLUMNS[0].cell(report)


async def test_guest_domain_counts_as_guests(site: Site, prosody: Prosody, focus: Focus) -> None:
    """config.js names a guest domain: a browser without a token logs in there."""
    cfg = await site.config(TOKEN_MOD, anonymousdomain=DOMAIN)
    (first,) = await rounds(cfg, prosody, focus, 1)
    assert reasons(first.report)["jwt_enforced"] == "jwt_optional"
    assert f"logs in on {DOMAIN}" in detail(first.report, Check.JWT_ENFORCED)


async def test_closed_token_server(site: Site, prosody: Prosody, focus: Focus) -> None:
    cfg = await site.config(TOKEN_MOD)
    (first,) = await rounds(cfg, prosody, focus, 1)
    report = first.report
    assert (reasons(report)["jwt_enforced"], reasons(report)["moderation"]) == ("ok", "ok")
    assert detail(report, Check.JWT_ENFORCED) == (
        "refused at login: bad signature, expired, no token; "
        "refused at the join: token for another room"
    )
    assert JWT_COLUMNS[0].cell(report) == "[green]ok[/]"


# -- the cadence -------------------------------------------------------------------


async def test_refusal_cases_run_at_their_interval(
    site: Site, prosody: Prosody, focus: Focus
) -> None:
    cfg = await site.config(
        TOKEN_MOD, server="    interval: 10s\n", jwt="      matrix_interval: 12s\n"
    )
    runner = Runner(cfg)
    try:
        first, second, third = await run_rounds(runner, cfg, prosody, focus, 3)
        # once the interval has passed (less half a probe interval), it runs again
        assert first.report.result(JwtResult).matrix_at is not None
        await asyncio.sleep(
            max(0.0, first.report.result(JwtResult).matrix_at + 12 - 5 - time.time()) + 0.2
        )
        (fourth,) = await run_rounds(runner, cfg, prosody, focus, 1)
    finally:
        await runner.close()
    # a matrix round: the main ladder, two refused logins, the token-less login,
    # the moderator's ladder and the other room's token; focus is asked twice
    for matrix_round in (first, fourth):
        cost = (matrix_round.cost.streams, matrix_round.conferences, matrix_round.cost.joins)
        assert cost == (6, 2, 3)
        assert "settle" in {p.name for p in matrix_round.report.result(XmppResult).phases}
    assert fourth.report.result(JwtResult).matrix_at != first.report.result(JwtResult).matrix_at
    # rounds in between: only the valid token's login and join, and no settle
    for between in (second, third):
        assert (between.cost.streams, between.conferences, between.cost.joins) == (1, 1, 1)
        report = between.report
        assert "settle" not in {p.name for p in report.result(XmppResult).phases}
        assert reasons(report)["jwt_enforced"] == "ok"
        assert reasons(report)["moderation"] == "ok"
        assert "(as of " in detail(report, Check.JWT_ENFORCED)
        assert report.result(JwtResult).matrix_at == first.report.result(JwtResult).matrix_at
        ages = dict(report.result(JwtResult).ages(report.finished_at))
        assert ages["valid"] == 0.0
        assert 0 < ages["bad_signature"] < 12
        assert dict(report.result(JwtResult).cases) == dict(first.report.result(JwtResult).cases)

    # the ages go out as a metric
    state = State(location="here")
    state.set_targets(cfg.targets())
    state.record(third.report)
    text = Exposition(state).render().decode()
    found = dict(
        re.findall(
            r'jitsi_jwt_case_age_seconds\{case="(\w+)",location="here",server="school"\} (\S+)',
            text,
        )
    )
    assert float(found["valid"]) == 0.0
    assert 0 < float(found["other_room"]) < 12


# -- BOSH: every session ends with the client's terminate ------------------------------


async def test_no_bosh_session_lingers(
    site: Site, prosody: Prosody, focus: Focus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 matrix rounds over BOSH: in each, the main ladder and the moderator's
    end their settle with a long poll in flight, and three logins are refused.
    Every session Prosody opened must be ended by the client, not left to
    Prosody's inactivity timeout."""
    cut_short = 0
    post = BoshTransport.post

    async def counting(self: BoshTransport, attrs: str, payload: str = "") -> None:
        nonlocal cut_short
        try:
            await post(self, attrs, payload)
        except asyncio.CancelledError:
            cut_short += 1  # a step stopped waiting with this request in flight
            raise

    monkeypatch.setattr(BoshTransport, "post", counting)
    cfg = await site.config(TOKEN_MOD, bosh=True, jwt="      matrix_interval: 0s\n")
    done = await rounds(cfg, prosody, focus, 20)
    assert cut_short >= 20, "settle ended with a long poll in flight"
    for r in done:
        assert reasons(r.report)["jwt_enforced"] == "ok", r.report.checks
        assert r.report.check(Check.SIGNALLING).detail == "over BOSH"  # type: ignore[union-attr]
    opened = set().union(*(r.cost.bosh_opened for r in done))
    assert len(opened) == 20 * 6

    def all_closed() -> bool:
        return opened <= prosody.counts().bosh_closed

    with contextlib.suppress(AssertionError):
        await eventually(all_closed, timeout=3)
    lingering = opened - prosody.counts().bosh_closed
    assert not lingering, f"{len(lingering)} of {len(opened)} BOSH sessions left open"


@pytest.mark.parametrize(
    ("domain", "owner_for_all", "server", "cost"),
    [
        # the main ladder, two refused logins, a refused token-less login, the
        # moderator's ladder and the other room's token
        (TOKEN_MOD, False, "", (6, 2, 3)),
        # a moderator: false token came out owner: a second participant tells why
        (TOKEN, True, "", (7, 2, 4)),
        # kind: public does not join: three refused logins besides the main ladder
        (TOKEN_MOD, False, "    kind: public\n", (4, 1, 0)),
    ],
    ids=["closed", "claim-ignored", "public"],
)
async def test_what_a_matrix_round_costs(
    site: Site,
    prosody: Prosody,
    focus: Focus,
    domain: str,
    owner_for_all: bool,
    server: str,
    cost: tuple[int, int, int],
) -> None:
    """Streams, conference requests and joins of one matrix round (docs/checks.md: Token checks)."""
    focus.grant_owner = owner_for_all
    cfg = await site.config(domain, server=server)
    (first,) = await rounds(cfg, prosody, focus, 1)
    assert (first.cost.streams, first.conferences, first.cost.joins) == cost
    assert reasons(first.report)["jwt_enforced"] == "ok"
    if owner_for_all:
        assert "focus grants owner to every participant" in detail(first.report, Check.MODERATION)
    if not server:  # every room is left (on a public server nobody joins one)
        await eventually(lambda: not focus.joined_rooms)
