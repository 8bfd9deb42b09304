"""The media stage's probe: STUN Bindings and TURN Allocates against a server's services.

The services are those its XMPP server announced (``Discovery``) and the
STUN servers of config.js's ``p2p.stunServers``, at most ``max_services``
in all. Each host is resolved (the monitor's resolver), and its address
refused when it is not a unicast address, or is private, loopback or
link-local and the server's media settings do not allow that
(``allow_private``: by default only for ``self_hosted`` servers); an IPv6
address carrying an IPv4 one is judged by it (``check_address``).
Credentials go only to the TURN service they were announced with.
Each service's whole probe (resolution, connection, transaction, release)
is bounded by ``media.timeout``.

Checks: ``stun`` (every STUN service answered a Binding), ``turn``
(every TURN service allocated, over its transport) and ``turn_relay``
(every TURN service that allocated relayed a datagram between two
allocations and back, ``relay``; it gets ``media.timeout`` of its own after
the allocation). Each fails with the reason of its first failing service;
the others are in the detail and in the report's probes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from monitor.checks.media.client import allocate, binding
from monitor.checks.media.extdisco import Discovery
from monitor.checks.media.relay import relay
from monitor.checks.media.relay_report import RelayProbe, RelayReport
from monitor.checks.media.result import MediaProbe, MediaReport, MediaService
from monitor.checks.media.rows import TURN_RELAY
from monitor.checks.media.services import Credentials, check_address, parse_stun_urls
from monitor.domain import MediaTarget
from monitor.ladder import Check
from monitor.model import CheckResult, Reason
from monitor.net import NetError, Resolver

__all__ = ["MediaOutcome", "probe_media"]

# A name whose resolution took this share of a probe's time or more is named in a timeout.
SLOW_DNS: Final = 0.2


@dataclass(frozen=True, slots=True)
class MediaOutcome:
    checks: tuple[CheckResult, ...]
    report: MediaReport
    relay: RelayReport


async def _resolve(resolver: Resolver, host: str, port: int) -> str:
    addrs = await resolver.resolve(host, port, socket.SOCK_DGRAM)
    # IPv4 first: what most TURN deployments listen on.
    return next((a for a in addrs if ":" not in a), addrs[0])


async def _probe_one(
    service: MediaService,
    credentials: Credentials | None,
    media: MediaTarget,
    resolver: Resolver,
    ssl_context: ssl.SSLContext | None,
    deadline: float,
    relays: dict[MediaService, RelayProbe],
) -> MediaProbe | str:
    """The service's probe, or why it was refused (a string); a TURN service's
    relay test, when it allocated, goes to ``relays``."""
    loop = asyncio.get_running_loop()
    stun_service = service.type == "stun"
    # One bound for the whole probe: resolution, connection, transaction, release.
    budget = max(0.05, min(media.timeout, deadline - loop.time()))
    end = loop.time() + budget
    resolving = 0.0
    try:
        started = loop.time()
        try:
            async with asyncio.timeout_at(end):
                address = await _resolve(resolver, service.host, service.port)
        except TimeoutError:
            reason = Reason.STUN_TIMEOUT if stun_service else Reason.TURN_TIMEOUT
            raise NetError(reason, f"no DNS answer for {service.host} in {budget:.1f} s") from None
        resolving = loop.time() - started
        refused = check_address(address, media.allow_private)
        if refused is not None:
            return f"{service.name}: {refused}"
        timeout = max(0.0, end - loop.time())
        if stun_service:
            rtt, mapped = await binding(service, address, timeout)
            return MediaProbe(service, Reason.OK, rtt, f"mapped address {mapped[0]}:{mapped[1]}")
        user = credentials.username if credentials else None
        password = credentials.password if credentials else None
        seconds = await allocate(service, address, user, password, ssl_context, timeout)
        relays[service] = await _relay_one(
            service, address, user, password, ssl_context, media, deadline
        )
        return MediaProbe(service, Reason.OK, seconds, "allocated and released")
    except NetError as exc:
        reason = exc.reason
        if reason is Reason.DNS_ERROR:
            reason = Reason.STUN_ERROR if stun_service else Reason.TURN_ERROR
        detail = exc.detail
        if reason in (Reason.STUN_TIMEOUT, Reason.TURN_TIMEOUT) and resolving >= SLOW_DNS * budget:
            detail += f" (resolving {service.host} took {resolving:.1f} s of {budget:.1f})"
        expires = service.expires
        if reason is Reason.TURN_UNAUTHORIZED and expires is not None and expires < time.time():
            detail += " (they had expired when announced)"
        return MediaProbe(service, reason, None, detail)


async def _relay_one(
    service: MediaService,
    address: str,
    user: str | None,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    media: MediaTarget,
    deadline: float,
) -> RelayProbe:
    """The relay test of a TURN service that allocated, in ``media.timeout`` of its own."""
    budget = max(0.05, min(media.timeout, deadline - asyncio.get_running_loop().time()))
    try:
        rtt, relay_a, relay_b = await relay(
            service,
            address,
            user,
            password,
            ssl_context,
            lambda relayed: check_address(relayed, media.allow_private),
            budget,
        )
    except NetError as exc:
        return RelayProbe(service, exc.reason, None, exc.detail)
    return RelayProbe(service, Reason.OK, rtt, f"relayed {_at(relay_a)} to {_at(relay_b)} and back")


def _at(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check(check: Check, probes: Sequence[MediaProbe], none: Reason, why_none: str) -> CheckResult:
    if not probes:
        return CheckResult(check, none, why_none)
    parts = []
    for p in probes:
        where = f"{p.service.name}/{p.service.transport}"
        if p.success and p.seconds is not None:
            parts.append(f"{where} ok in {p.seconds * 1000:.1f} ms")
        else:
            parts.append(f"{where} {p.reason.value}: {p.detail}")
    # A relay test not tried (its allocation failed) gives way to one that failed.
    failed = next((p for p in probes if not p.success and p.reason is not Reason.SKIPPED), None)
    failed = failed or next((p for p in probes if not p.success), None)
    return CheckResult(check, failed.reason if failed else Reason.OK, "; ".join(parts))


async def probe_media(
    discovery: Discovery | None,
    stun_urls: tuple[str, ...],
    media: MediaTarget,
    resolver: Resolver,
    ssl_context: ssl.SSLContext | None,
    deadline: float,
) -> MediaOutcome:
    """Probe every service once (concurrently) until the loop time ``deadline``."""
    at = time.time()
    announced = discovery.announced if discovery is not None else None
    services = list(announced.services if announced else ())
    credentials = announced.credentials if announced else {}
    refused = list(announced.refused if announced else ())
    from_config, bad_urls = parse_stun_urls(stun_urls)
    refused += bad_urls
    seen = {(s.type, s.host, s.port, s.transport) for s in services}
    for service in from_config:
        key = (service.type, service.host, service.port, service.transport)
        if key in seen:  # announced too: probed once (one series per service and transport)
            continue
        if len(services) >= media.max_services:
            refused.append(f"{service.name}: more than {media.max_services} services")
            continue
        seen.add(key)
        services.append(service)
    relays: dict[MediaService, RelayProbe] = {}
    outcomes = await asyncio.gather(
        *(
            _probe_one(s, credentials.get(s), media, resolver, ssl_context, deadline, relays)
            for s in services
        )
    )
    probes = [o for o in outcomes if isinstance(o, MediaProbe)]
    refused += [o for o in outcomes if isinstance(o, str)]
    refused_note = f"; refused: {'; '.join(refused)}" if refused else ""
    if discovery is None or not discovery.done:
        found = "the services were not asked for"
    elif discovery.error:
        found = discovery.error
    else:
        found = "none announced"
    stun = _check(
        Check.STUN,
        [p for p in probes if p.service.type == "stun"],
        Reason.NO_STUN_SERVICE,
        f"no STUN service ({found}; none in config.js){refused_note}",
    )
    turn = _check(
        Check.TURN,
        [p for p in probes if p.service.type != "stun"],
        Reason.NO_TURN_SERVICE,
        f"no TURN service ({found}){refused_note}",
    )
    relay_probes = [
        relays.get(p.service)
        or RelayProbe(
            p.service, Reason.SKIPPED, None, f"not tried: the allocation failed ({p.reason.value})"
        )
        for p in probes
        if p.service.type != "stun"
    ]
    turn_relay = _check(
        TURN_RELAY,
        relay_probes,
        Reason.NO_TURN_SERVICE,
        f"no TURN service ({found}){refused_note}",
    )
    report = MediaReport(at, tuple(services), tuple(probes), tuple(refused))
    return MediaOutcome((stun, turn, turn_relay), report, RelayReport(at, tuple(relay_probes)))
