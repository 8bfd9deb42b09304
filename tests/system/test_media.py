"""The media path against real servers: Debian's Prosody announcing Debian's coturn.

Prosody 0.12's own ``mod_turn_external`` (with ``mod_external_services``)
announces a coturn that the tests start on loopback (tests/coturn.py):
STUN and TURN over UDP and TCP, TURN over TLS. Each case is what a user
reads in the report: STUN round trips and TURN allocations per transport
when all is well, and, within one round, ``turn_refused`` when coturn is
stopped, ``turn_unauthorized`` when its secret no longer matches
Prosody's, and so on. The TURN relay (``turn_relay``): coturn refuses
loopback peers by default, so there ``turn`` passes and ``turn_relay`` is
``turn_relay_forbidden``; with ``allow-loopback-peers`` both pass, on every
transport; a ``denied-peer-ip`` covering the relayed addresses forbids it
again; a real Prometheus fires ``JitsiTurnRelayDown`` while ``turn`` passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme

from monitor.checks.media.relay_report import RelayReport
from monitor.checks.media.result import MediaReport
from monitor.checks.media.rows import TURN_RELAY
from monitor.config import MonitorConfig
from monitor.metrics import Exposition
from monitor.model import Check, Reason, ServerReport
from monitor.runner import Runner
from monitor.state import State
from monitor.views import report_dict
from tests.support.alerting import firing, prometheus_alerting_on, query, until
from tests.support.cli import promtool_check
from tests.support.coturn import SECRET, Coturn
from tests.support.media import detail, reason, rounds
from tests.support.processes import Served, start_serve
from tests.support.prosody import Prosody, free_port
from tests.support.sites import StartSite, jitsi_app, make_config

# Virtual hosts of the test Prosody. JITSI announces STUN and TURN over UDP and
# TCP and TURN over TLS the way Jitsi's Debian packages configure Prosody
# (mod_external_services; jitsi/jitsi-meet
# doc/debian/jitsi-meet-prosody/prosody.cfg.lua-jvb.example at
# 156a6861bfb1512069f44facdb41f01899913f65, plus TCP). MEDIA uses Prosody's
# own mod_turn_external with the same TURN server; MIXED is what docs/checks.md
# tells its operator to do instead: mod_turn_external for STUN and TURN, the
# TLS service in external_services with credentials; EXPIRED hands out
# credentials that have already expired; BARE announces nothing.
JITSI = "jitsi.test"
MEDIA = "media.test"
MIXED = "mixed.test"
EXPIRED = "expired.test"
BARE = "bare.test"
TURN_PORT = free_port()
TLS_PORT = free_port()

HOSTS = f"""
VirtualHost "{JITSI}"
    authentication = "anonymous"
    modules_enabled = {{ "external_services" }}
    external_service_secret = "{SECRET}"
    external_services = {{
        {{ type = "stun", host = "127.0.0.1", port = {TURN_PORT} }},
        {{ type = "stun", host = "127.0.0.1", port = {TURN_PORT}, transport = "tcp" }},
        {{ type = "turn", host = "127.0.0.1", port = {TURN_PORT}, transport = "udp",
          secret = true, ttl = 86400, algorithm = "turn" }},
        {{ type = "turn", host = "127.0.0.1", port = {TURN_PORT}, transport = "tcp",
          secret = true, ttl = 86400, algorithm = "turn" }},
        {{ type = "turns", host = "127.0.0.1", port = {TLS_PORT}, transport = "tcp",
          secret = true, ttl = 86400, algorithm = "turn" }},
    }}

VirtualHost "{MEDIA}"
    authentication = "anonymous"
    modules_enabled = {{ "turn_external" }}
    turn_external_secret = "{SECRET}"
    turn_external_host = "127.0.0.1"
    turn_external_port = {TURN_PORT}
    turn_external_tcp = true
    turn_external_tls_port = {TLS_PORT}

VirtualHost "{MIXED}"
    authentication = "anonymous"
    modules_enabled = {{ "turn_external" }}
    turn_external_secret = "{SECRET}"
    turn_external_host = "127.0.0.1"
    turn_external_port = {TURN_PORT}
    turn_external_tcp = true
    external_services = {{
        {{ type = "turns", host = "127.0.0.1", port = {TLS_PORT}, transport = "tcp",
          secret = "{SECRET}", ttl = 86400, algorithm = "turn" }},
    }}

VirtualHost "{EXPIRED}"
    authentication = "anonymous"
    modules_enabled = {{ "turn_external" }}
    turn_external_secret = "{SECRET}"
    turn_external_host = "127.0.0.1"
    turn_external_port = {TURN_PORT}
    turn_external_ttl = -3600

VirtualHost "{BARE}"
    authentication = "anonymous"
"""


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    server = Prosody(tmp_path_factory.mktemp("prosody-media"), extra=HOSTS)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def turn_cert(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("coturn-cert")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(where / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
    return where / "cert.pem", where / "key.pem"


@pytest.fixture
def coturn(tmp_path: Path, turn_cert: tuple[Path, Path]) -> Iterator[Coturn]:
    server = Coturn(tmp_path / "coturn", *turn_cert, port=TURN_PORT, tls_port=TLS_PORT)
    server.start()
    yield server
    server.stop()


@dataclass
class Site:
    prosody: Prosody
    start_site: StartSite
    ca_file: Path

    async def config(self, domain: str, *, stun: str = "", media: str = "") -> MonitorConfig:
        """A page whose config.js points at Prosody's ``domain``, and a config for it."""
        return make_config(await self.yaml(domain, stun=stun, media=media))

    async def yaml(
        self,
        domain: str,
        *,
        stun: str = "",
        media: str = "",
        interval: str = "60s",
        timeout: str = "10s",
    ) -> str:
        """A page whose config.js points at Prosody's ``domain``, and servers.yaml for it."""
        p2p = f", p2p: {{ stunServers: [{stun}] }}" if stun else ""
        js = (
            f"var config = {{ hosts: {{ domain: '{domain}', muc: 'conference.{domain}' }}, "
            f"websocket: '{self.prosody.websocket}'{p2p} }};"
        )
        site = await self.start_site(jitsi_app(js))
        return (
            f"servers:\n  - name: school\n    url: {site.url}\n    timeout: {timeout}\n"
            f"    interval: {interval}\n    tls: {{ca_file: {self.ca_file}}}\n"
            "    signalling: {focus: false, join: false}\n"
            f"    media: {{interval: 0s, timeout: 2s{media}}}\n"
        )


@pytest.fixture
def site(prosody: Prosody, start_site: StartSite, ca_file: Path) -> Site:
    return Site(prosody, start_site, ca_file)


def by_transport(media: MediaReport | RelayReport | None) -> dict[str, Reason]:
    """Each probe's reason by service type and transport ("turn/udp")."""
    assert media is not None
    return {f"{p.service.type}/{p.service.transport}": p.reason for p in media.probes}


def metrics_text(cfg: MonitorConfig, report: ServerReport) -> str:
    """What /metrics would show after this one report."""
    state = State()
    state.set_targets(cfg.targets())
    state.record(report)
    return Exposition(state).render().decode()


async def round_with(
    coturn: Coturn, site: Site, runner_for: list[Runner]
) -> tuple[MonitorConfig, ServerReport]:
    """One round against JITSI's page while ``coturn`` runs for it alone."""
    coturn.start()
    try:
        cfg = await site.config(JITSI)
        (report,) = await rounds(cfg, runner_for)
    finally:
        coturn.stop()
    return cfg, report


async def test_all_good_reports_stun_and_turn_per_transport(
    site: Site, coturn: Coturn, runner_for: list[Runner]
) -> None:
    cfg = await site.config(JITSI, stun=f"{{ urls: 'stun:127.0.0.1:{coturn.port}' }}")
    (report,) = await rounds(cfg, runner_for)
    assert reason(report, Check.SIGNALLING) is Reason.OK
    assert reason(report, Check.STUN) is Reason.OK, detail(report, Check.STUN)
    assert reason(report, Check.TURN) is Reason.OK, detail(report, Check.TURN)
    assert report.result(MediaReport) is not None
    assert by_transport(report.result(MediaReport)) == {
        "stun/udp": Reason.OK,
        "stun/tcp": Reason.OK,
        "turn/udp": Reason.OK,
        "turn/tcp": Reason.OK,
        "turns/tcp": Reason.OK,
    }
    # config.js's STUN server is the announced one: probed once
    assert len(report.result(MediaReport).services) == 5
    assert len(report.result(MediaReport).probes) == 5
    turn = [s for s in report.result(MediaReport).services if s.type != "stun"]
    assert all(s.credentials and s.expires for s in turn)
    assert "ok in" in detail(report, Check.TURN)

    text = metrics_text(cfg, report)
    for transport in ("udp", "tcp"):
        assert (
            f'jitsi_turn_allocate_seconds{{location="default",server="school",service="turn:127.0.0.1:{coturn.port}",transport="{transport}",type="turn"}}'
            in text
        )
    assert f'service="turns:127.0.0.1:{coturn.tls_port}",transport="tcp",type="turns"' in text
    assert "jitsi_stun_rtt_seconds{" in text
    assert 'jitsi_check_success{check="turn",location="default",server="school"} 1.0' in text
    assert "jitsi_turn_credentials_expiry_timestamp_seconds{" in text
    await promtool_check(text)


async def test_coturn_refusing_loopback_peers_allocates_but_does_not_relay(
    site: Site, coturn: Coturn, runner_for: list[Runner]
) -> None:
    # coturn's default: no loopback peers, and its relays are on loopback here.
    cfg = await site.config(JITSI)
    (report,) = await rounds(cfg, runner_for)
    assert reason(report, Check.TURN) is Reason.OK, detail(report, Check.TURN)
    assert reason(report, TURN_RELAY) is Reason.TURN_RELAY_FORBIDDEN
    assert "CreatePermission: error 403" in detail(report, TURN_RELAY)
    assert by_transport(report.result(RelayReport)) == {
        "turn/udp": Reason.TURN_RELAY_FORBIDDEN,
        "turn/tcp": Reason.TURN_RELAY_FORBIDDEN,
        "turns/tcp": Reason.TURN_RELAY_FORBIDDEN,
    }
    assert report.up, "the media path is not part of the verdict"
    text = metrics_text(cfg, report)
    assert 'jitsi_check_success{check="turn",location="default",server="school"} 1.0' in text
    assert 'jitsi_check_success{check="turn_relay",location="default",server="school"} 0.0' in text
    assert "jitsi_turn_relay_rtt_seconds{" not in text


async def test_allow_loopback_peers_relays_on_every_transport(
    site: Site, turn_cert: tuple[Path, Path], tmp_path: Path, runner_for: list[Runner]
) -> None:
    relaying = Coturn(
        tmp_path / "relaying",
        *turn_cert,
        port=TURN_PORT,
        tls_port=TLS_PORT,
        allow_loopback_peers=True,
    )
    cfg, report = await round_with(relaying, site, runner_for)
    assert reason(report, Check.TURN) is Reason.OK, detail(report, Check.TURN)
    assert reason(report, TURN_RELAY) is Reason.OK, detail(report, TURN_RELAY)
    assert set(by_transport(report.result(RelayReport)).values()) == {Reason.OK}
    assert len(by_transport(report.result(RelayReport))) == 3
    assert "udp ok in" in detail(report, TURN_RELAY)
    assert all("and back" in p.detail for p in report.result(RelayReport).probes)
    text = metrics_text(cfg, report)
    for transport in ("udp", "tcp"):
        assert (
            f'jitsi_turn_relay_rtt_seconds{{location="default",server="school",service="turn:127.0.0.1:{TURN_PORT}",transport="{transport}",type="turn"}}'
            in text
        )
    assert 'jitsi_check_success{check="turn_relay",location="default",server="school"} 1.0' in text
    await promtool_check(text)
    shown = report_dict(cfg.targets()[0], report)
    assert {r["reason"] for r in shown["media"]["relays"]} == {"ok"}


async def test_denied_peer_ip_covering_the_relays_forbids_the_relay(
    site: Site, turn_cert: tuple[Path, Path], tmp_path: Path, runner_for: list[Runner]
) -> None:
    denied = Coturn(
        tmp_path / "denied",
        *turn_cert,
        port=TURN_PORT,
        tls_port=TLS_PORT,
        allow_loopback_peers=True,
        denied_peer_ip="127.0.0.1",
    )
    _, report = await round_with(denied, site, runner_for)
    assert reason(report, Check.TURN) is Reason.OK
    assert reason(report, TURN_RELAY) is Reason.TURN_RELAY_FORBIDDEN


async def test_stopping_coturn_fails_turn_within_one_round(
    site: Site, coturn: Coturn, runner_for: list[Runner]
) -> None:
    cfg = await site.config(JITSI)
    runner = Runner(cfg)
    runner_for.append(runner)
    before = await runner.run_now(cfg.targets()[0])
    assert reason(before, Check.TURN) is Reason.OK
    coturn.stop()
    after = await runner.run_now(cfg.targets()[0])
    assert reason(after, Check.SIGNALLING) is Reason.OK
    assert reason(after, Check.TURN) in (Reason.TURN_REFUSED, Reason.TURN_TIMEOUT)
    assert reason(after, Check.STUN) is Reason.STUN_ERROR
    assert by_transport(after.result(MediaReport))["turn/tcp"] is Reason.TURN_REFUSED
    # No allocation, no relay test: turn says why.
    assert reason(after, TURN_RELAY) is Reason.SKIPPED
    assert "not tried: the allocation failed" in detail(after, TURN_RELAY)
    assert after.up, "the media path is not part of the verdict"


async def test_a_changed_secret_is_turn_unauthorized(
    site: Site, coturn: Coturn, runner_for: list[Runner]
) -> None:
    coturn.restart(secret="another-secret-than-prosodys")
    cfg = await site.config(JITSI)
    (report,) = await rounds(cfg, runner_for)
    assert reason(report, Check.STUN) is Reason.OK
    assert reason(report, Check.TURN) is Reason.TURN_UNAUTHORIZED
    assert "401" in detail(report, Check.TURN)
    assert set(by_transport(report.result(MediaReport)).values()) == {
        Reason.OK,
        Reason.TURN_UNAUTHORIZED,
    }


async def test_only_udp_reachable(
    site: Site, turn_cert: tuple[Path, Path], tmp_path: Path, runner_for: list[Runner]
) -> None:
    udp_only = Coturn(tmp_path / "udp", *turn_cert, port=TURN_PORT, tls_port=TLS_PORT)
    udp_only.udp_only = True
    _, report = await round_with(udp_only, site, runner_for)
    probes = by_transport(report.result(MediaReport))
    assert probes["turn/udp"] is Reason.OK
    assert probes["turn/tcp"] is Reason.TURN_REFUSED
    assert probes["turns/tcp"] is Reason.TURN_REFUSED
    assert reason(report, Check.TURN) is Reason.TURN_REFUSED


async def test_prosodys_turn_external_announces_turns_without_credentials(
    site: Site, coturn: Coturn, runner_for: list[Runner]
) -> None:
    # Debian's Prosody 0.12.3 mod_turn_external gives credentials to type "turn"
    # only, and mod_external_services makes them for "turns" only with
    # algorithm = "turn": a browser cannot use TURN over TLS from it.
    cfg = await site.config(MEDIA)
    (report,) = await rounds(cfg, runner_for)
    probes = by_transport(report.result(MediaReport))
    assert probes["turn/udp"] is Reason.OK
    assert probes["turn/tcp"] is Reason.OK
    assert probes["turns/tcp"] is Reason.TURN_UNAUTHORIZED
    assert "no credentials announced" in detail(report, Check.TURN)


async def test_turns_with_credentials_next_to_turn_external(
    site: Site, coturn: Coturn, runner_for: list[Runner]
) -> None:
    # The remedy docs/checks.md gives: the TLS service declared in external_services with
    # algorithm = "turn" carries credentials, and TURN over TLS allocates.
    cfg = await site.config(MIXED)
    (report,) = await rounds(cfg, runner_for)
    probes = by_transport(report.result(MediaReport))
    assert probes == {
        "stun/udp": Reason.OK,
        "stun/tcp": Reason.OK,
        "turn/udp": Reason.OK,
        "turn/tcp": Reason.OK,
        "turns/tcp": Reason.OK,
    }
    assert reason(report, Check.TURN) is Reason.OK


async def test_expired_credentials(site: Site, coturn: Coturn, runner_for: list[Runner]) -> None:
    cfg = await site.config(EXPIRED)
    (report,) = await rounds(cfg, runner_for)
    assert reason(report, Check.TURN) is Reason.TURN_UNAUTHORIZED
    assert "expired when announced" in detail(report, Check.TURN)


async def test_no_services_announced(site: Site, runner_for: list[Runner]) -> None:
    cfg = await site.config(BARE)
    (report,) = await rounds(cfg, runner_for)
    assert reason(report, Check.SIGNALLING) is Reason.OK
    assert reason(report, Check.TURN) is Reason.NO_TURN_SERVICE
    assert reason(report, Check.STUN) is Reason.NO_STUN_SERVICE
    assert "service-unavailable" in detail(report, Check.TURN)


async def test_prometheus_fires_the_turn_alert(
    site: Site,
    coturn: Coturn,
    tmp_path: Path,
    serve: list[Served],
    processes: list[asyncio.subprocess.Process],
) -> None:
    config = tmp_path / "servers.yaml"
    config.write_text(await site.yaml(JITSI, interval="1s", timeout="1s"))
    served = await start_serve(config, serve)
    base = await prometheus_alerting_on(processes, tmp_path, served.base)
    async with aiohttp.ClientSession() as session:

        async def turn_ok() -> bool:
            expr = 'jitsi_check_success{job="jitsi-monitor",check="turn"} == 1'
            return len(await query(session, base, expr)) == 1

        await until(turn_ok, "TURN allocating in Prometheus")
        allocations = await query(session, base, "jitsi_turn_allocate_seconds")
        assert {r["metric"]["transport"] for r in allocations} == {"udp", "tcp"}
        assert not [a for a in await firing(session, base) if a["alertname"] == "JitsiTurnDown"]

        # This coturn refuses loopback peers, its relays' addresses: it
        # allocates, but does not relay.
        async def relay_down() -> list[dict[str, str]]:
            alerts = await firing(session, base)
            return [a for a in alerts if a["alertname"] == "JitsiTurnRelayDown"]

        (relay_alert,) = await until(relay_down, "JitsiTurnRelayDown firing")
        assert relay_alert["server"] == "school"
        assert relay_alert["check"] == "turn_relay"
        assert not [a for a in await firing(session, base) if a["alertname"] == "JitsiTurnDown"]

        coturn.stop()

        async def turn_down() -> list[dict[str, str]]:
            alerts = await firing(session, base)
            return [a for a in alerts if a["alertname"] == "JitsiTurnDown"]

        (alert,) = await until(turn_down, "JitsiTurnDown firing")
        assert alert["server"] == "school"
        assert alert["severity"] == "warning"
