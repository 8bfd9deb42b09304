"""The media stage against the lab's simulated XEP-0215 answers: fast cases.

A hostile answer (thousands of services, bogus hosts and ports, private
addresses, overlong credentials, control characters) is bounded and refused
entry by entry; a server without the service says so; a public server's
media is off unless asked for; the verdicts are carried between their runs;
discovery is bounded as a whole, and a slow DNS answer counts towards
``media.timeout`` and is named.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
import typing

import pytest

from monitor.checks.media import parse_stun_urls
from monitor.checks.media.relay_report import RelayReport
from monitor.checks.media.result import MediaReport
from monitor.checks.media.rows import TURN_RELAY
from monitor.config import parse_config
from monitor.lab import LabServer, servers_yaml
from monitor.lab.media import LabTurn, hostile_services, rest_services
from monitor.metrics import Exposition
from monitor.model import Check, Reason, ServerReport
from monitor.runner import Runner
from monitor.state import State
from tests.support.lab import Lab


def yaml(server: LabServer, *, kind: str = "self_hosted", media: str = "", extra: str = "") -> str:
    return (
        f"{extra}servers:\n  - name: s\n    url: {server.url}\n    kind: {kind}\n"
        f"    timeout: 5s\n{media}"
    )


async def rounds(text: str, n: int = 1) -> list[ServerReport]:
    cfg = parse_config(text)
    runner = Runner(cfg)
    try:
        return [await runner.run_now(cfg.targets()[0]) for _ in range(n)]
    finally:
        await runner.close()


def result(report: ServerReport, check: Check) -> tuple[Reason, str]:
    found = report.check(check)
    assert found is not None, report.checks
    return found.reason, found.detail


async def test_a_hostile_answer_is_bounded_and_refused(lab: Lab, nxdomain_dns: str) -> None:
    server = await lab(services=hostile_services())
    text = yaml(
        server,
        kind="public",
        media="    media: {enabled: true, timeout: 1s, max_services: 4}\n",
        extra=f"dns: {{nameservers: ['{nxdomain_dns}']}}\n",
    )
    (report,) = await rounds(text)
    assert result(report, Check.SIGNALLING)[0] is Reason.OK
    media = report.result(MediaReport)
    assert media is not None
    # at most max_services probed; what was refused says why, briefly
    assert len(media.services) <= 4
    assert len(media.refused) <= 16 + 4
    refused = " ".join(media.refused)
    assert "past the first 64" in refused
    assert "not a valid host and port" in refused
    assert "not a STUN or TURN service" in refused
    assert "transport sctp is not udp or tcp" in refused
    assert "credentials too long" in refused
    assert "\u202e" not in refused
    assert "\\u202egro.example" in refused
    # a public server's non-public addresses are not probed, and get no credentials
    hosts = {s.host for s in media.services}
    probed = {p.service.host for p in media.probes}
    assert "127.0.0.2" in hosts
    assert "127.0.0.2" not in probed
    assert "127.0.0.3" not in probed
    assert "loopback" in refused or "loopback" in result(report, Check.TURN)[1]
    # the names that look fine do not resolve (the test's DNS knows none)
    assert {p.reason for p in media.probes} <= {Reason.STUN_ERROR, Reason.TURN_ERROR}
    assert result(report, Check.STUN)[0] is Reason.STUN_ERROR
    assert "cannot resolve" in result(report, Check.STUN)[1]


async def test_private_addresses_only_where_allowed(lab: Lab) -> None:
    services = "<service type='stun' transport='udp' host='127.0.0.1' port='9'/>"
    server = await lab(services=services)
    (public,) = await rounds(yaml(server, kind="public", media="    media: {enabled: true}\n"))
    reason, detail = result(public, Check.STUN)
    assert reason is Reason.NO_STUN_SERVICE
    assert "127.0.0.1 is a loopback address" in detail
    (own,) = await rounds(yaml(server, media="    media: {timeout: 1s}\n"))
    assert result(own, Check.STUN)[0] in (Reason.STUN_ERROR, Reason.STUN_TIMEOUT)


async def test_a_server_without_the_service(lab: Lab) -> None:
    server = await lab(services=None)
    (report,) = await rounds(yaml(server))
    reason, detail = result(report, Check.TURN)
    assert reason is Reason.NO_TURN_SERVICE
    assert "urn:xmpp:extdisco:2: service-unavailable" in detail
    assert "urn:xmpp:extdisco:1: service-unavailable" in detail
    assert result(report, Check.STUN)[0] is Reason.NO_STUN_SERVICE


async def test_discovery_takes_at_most_a_third_of_the_ladder_for_both_queries(lab: Lab) -> None:
    # Each answer takes 1.6 s: extdisco:2 is refused after 1.6 s, :1 would be
    # refused 1.6 s later. Both together get a third of the 8 s ladder (about
    # 2.6 s), not that much each: the :1 query is cut short and the signalling
    # checks after it keep their time.
    server = await lab(services=None, services_delay=1.6)
    (report,) = await rounds(yaml(server).replace("timeout: 5s", "timeout: 8s"))
    reason, detail = result(report, Check.TURN)
    assert reason is Reason.NO_TURN_SERVICE
    assert "no answer to the urn:xmpp:extdisco:1 query" in detail
    assert "after urn:xmpp:extdisco:2: service-unavailable" in detail
    for check in (Check.SIGNALLING, Check.FOCUS, Check.MUC):
        assert result(report, check)[0] is Reason.OK


class _SlowDns(asyncio.DatagramProtocol):
    """Answers every A query with 127.0.0.1 (any other with no record) after ``delay`` s."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        end = data.find(b"\0", 12) + 5  # the question: its name, type and class
        if len(data) < 17 or end < 17 or end > len(data):
            return
        question = data[12:end]
        is_a = question[-4:-2] == b"\0\1"
        header = struct.pack(
            "!HHHHHH", struct.unpack("!H", data[:2])[0], 0x8180, 1, int(is_a), 0, 0
        )
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
        reply = header + question + (record if is_a else b"")
        asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, reply, addr)


@pytest.mark.parametrize(
    ("delay", "said"),
    [
        # what is left of the second after the name resolved goes to the Binding
        (0.6, r"no answer in 0\.\d s \(resolving stun\.lab\.test took 0\.\d s of 1\.0\)"),
        (1.5, r"no DNS answer for stun\.lab\.test in 1\.0 s"),
    ],
    ids=["slow", "silent"],
)
async def test_a_slow_dns_answer_counts_towards_media_timeout(
    lab: Lab, delay: float, said: str
) -> None:
    loop = asyncio.get_running_loop()
    dns, _ = await loop.create_datagram_endpoint(
        lambda: _SlowDns(delay), local_addr=("127.0.0.1", 0)
    )
    silent, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        dns_port = dns.get_extra_info("sockname")[1]
        stun_port = silent.get_extra_info("sockname")[1]
        services = f"<service type='stun' transport='udp' host='stun.lab.test' port='{stun_port}'/>"
        server = await lab(services=services)
        (report,) = await rounds(
            yaml(
                server,
                media="    media: {timeout: 1s}\n",
                extra=f"dns: {{nameservers: ['127.0.0.1:{dns_port}']}}\n",
            )
        )
        reason, detail = result(report, Check.STUN)
        assert reason is Reason.STUN_TIMEOUT
        assert re.search(said, detail), detail
    finally:
        dns.close()
        silent.close()


async def test_public_servers_have_no_media_checks_by_default(lab: Lab) -> None:
    server = await lab(services=rest_services("127.0.0.1", 9, "s"))
    (report,) = await rounds(yaml(server, kind="public"))
    assert report.check(Check.TURN) is None
    assert report.result(MediaReport) is None
    cfg = parse_config(yaml(server, kind="jaas"))
    assert cfg.targets()[0].media is not None


async def test_verdicts_are_carried_between_their_runs(lab: Lab) -> None:
    services = "<service type='turn' transport='udp' host='127.0.0.1' port='9'/>"
    server = await lab(services=services)
    first, second = await rounds(yaml(server, media="    media: {interval: 10m, timeout: 1s}\n"), 2)
    assert first.result(MediaReport) is not None
    assert second.result(MediaReport) is not None
    assert second.result(MediaReport).at == first.result(MediaReport).at
    reason, detail = result(second, Check.TURN)
    assert reason is result(first, Check.TURN)[0]
    assert "as of" in detail
    assert detail.endswith("; media is probed every 10 min)")
    # the relay test of a service that did not allocate: not tried, and carried
    reason, detail = result(second, TURN_RELAY)
    assert reason is Reason.SKIPPED
    assert "not tried: the allocation failed (turn_refused)" in detail
    assert second.result(RelayReport) is first.result(RelayReport)


async def test_the_labs_relay_is_carried_and_shown(lab: Lab) -> None:
    server = await lab(media=True)
    cfg = yaml(server, media="    media: {interval: 10m}\n")
    first, second = await rounds(cfg, 2)
    assert result(first, TURN_RELAY)[0] is Reason.OK
    assert result(second, TURN_RELAY)[0] is Reason.OK
    assert "as of" in result(second, TURN_RELAY)[1]
    relayed = second.result(RelayReport)
    assert relayed is not None
    assert [p.reason for p in relayed.probes] == [Reason.OK]
    state = State()
    state.set_targets(parse_config(cfg).targets())
    state.record(second)
    text = Exposition(state).render().decode()
    assert "jitsi_turn_relay_rtt_seconds{" in text
    assert 'jitsi_check_success{check="turn_relay",' in text


def test_google_stun_servers_from_config_js() -> None:
    services, refused = parse_stun_urls(
        (
            "stun:meet-jit-si-turnrelay.jitsi.net:443",
            "stun:stun.l.google.com:19302",
            "stun:stun1.l.google.com:19302",
            "stun:[2001:db8::1]",
            "turn:x.example",
            "stun:bad host",
        )
    )
    assert [(s.host, s.port, s.google) for s in services] == [
        ("meet-jit-si-turnrelay.jitsi.net", 443, False),
        ("stun.l.google.com", 19302, True),
        ("stun1.l.google.com", 19302, True),
        ("2001:db8::1", 3478, False),
    ]
    assert services[3].name == "stun:[2001:db8::1]:3478"
    assert len(refused) == 2


async def test_the_labs_simulated_turn_server(lab: Lab) -> None:
    server = await lab(media=True)
    (report,) = await rounds(servers_yaml([server]))
    assert result(report, Check.STUN)[0] is Reason.OK
    assert result(report, Check.TURN)[0] is Reason.OK
    assert result(report, TURN_RELAY)[0] is Reason.OK
    assert server.turn is not None
    # One for turn, two for turn_relay; all three released.
    assert server.turn.allocations == 3
    assert server.turn.relayed == {}
    assert report.result(MediaReport) is not None
    (turn,) = [s for s in report.result(MediaReport).services if s.type == "turn"]
    assert turn.credentials
    assert turn.expires is not None


async def test_turn_credentials_expiry_is_that_of_a_probed_turn_service(lab: Lab) -> None:
    turn = await LabTurn.start()
    try:
        announced = turn.services()  # STUN, and TURN with credentials for a day
        found = re.search(r"type='turn'[^>]*username='(\d+)'", announced)
        assert found is not None
        # an hour from now: earlier than the TURN credentials (a day)
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        earlier = (
            # credentials on a STUN service: a browser does not use them
            f"<service type='stun' transport='tcp' host='127.0.0.1' port='{turn.port}' "
            f"username='1' password='p' expires='{soon}'/>"
            # a TURN service whose address is refused: never probed
            f"<service type='turn' transport='udp' host='0.0.0.0' port='3478' "
            f"username='1' password='p' expires='{soon}'/>"
        )
        server = await lab(services=earlier + announced)
        text = yaml(server, media="    media: {timeout: 1s}\n")
        (report,) = await rounds(text)
        assert report.result(MediaReport) is not None
        assert any(
            "0.0.0.0 is the unspecified address" in r for r in report.result(MediaReport).refused
        )
        assert report.result(MediaReport).turn_credentials_expiry == int(found[1])
        # ... and what Prometheus reads
        state = State()
        state.set_targets(parse_config(text).targets())
        state.record(report)
        exported = Exposition(state).render().decode()
        expiry = float(int(found[1]))
        assert (
            'jitsi_turn_credentials_expiry_timestamp_seconds{location="default",server="s"} '
            f"{expiry!r}\n" in exported
        ), exported
    finally:
        turn.close()
