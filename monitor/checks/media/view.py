"""The media family's views: its JSON key, its column of ``check``'s table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor import escape
from monitor.checks.family import Column, JsonPart
from monitor.checks.media.relay_report import RelayReport
from monitor.checks.media.result import MediaReport
from monitor.checks.media.rows import TURN_RELAY
from monitor.checks.web.view import ms
from monitor.ladder import Check
from monitor.model import Reason, ServerReport

__all__ = ["COLUMNS", "JSON", "media_dict"]


def media_dict(media: MediaReport) -> dict[str, Any]:
    """The media run a report shows: its services, each probe, what was refused."""
    return {
        "at": media.at,
        "services": [
            {
                "service": s.name,
                "type": s.type,
                "host": s.host,
                "port": s.port,
                "transport": s.transport,
                "source": s.source,
                "credentials": s.credentials,
                "expires": s.expires,
                "google": s.google,
            }
            for s in media.services
        ],
        "probes": [
            {
                "service": p.service.name,
                "transport": p.service.transport,
                "reason": p.reason.value,
                "seconds": None if p.seconds is None else round(p.seconds, 6),
                "detail": p.detail,
            }
            for p in media.probes
        ],
        "refused": list(media.refused),
    }


def relays_list(relay: RelayReport) -> list[dict[str, Any]]:
    """The relay test of each TURN service and transport (``turn_relay``)."""
    return [
        {
            "service": p.service.name,
            "transport": p.service.transport,
            "reason": p.reason.value,
            "seconds": None if p.seconds is None else round(p.seconds, 6),
            "detail": p.detail,
        }
        for p in relay.probes
    ]


def _end(report: ServerReport) -> Mapping[str, Any]:
    media = report.result(MediaReport)
    if media is None:
        return {}
    shown = media_dict(media)
    relay = report.result(RelayReport)
    if relay is not None:
        shown["relays"] = relays_list(relay)
    return {"media": shown}


JSON: tuple[JsonPart, ...] = (JsonPart("end", _end),)


def _cell(report: ServerReport) -> str:
    """STUN's slowest round trip, TURN's allocation per transport and the relay's
    slowest round trip, or what failed."""
    stun, turn = report.check(Check.STUN), report.check(Check.TURN)
    media = report.result(MediaReport)
    if stun is None or turn is None:
        return "off"
    if Reason.SKIPPED in (stun.reason, turn.reason) or media is None:
        return "skipped"
    words = []
    rtts = [p.seconds for p in media.probes if p.service.type == "stun" and p.seconds]
    if stun.success:
        words.append(f"[green]STUN[/] {ms(max(rtts))}" if rtts else "[green]STUN[/]")
    else:
        words.append(f"[red]STUN {escape.term(stun.reason.value)}[/]")
    if not turn.success:
        words.append(f"[red]TURN {escape.term(turn.reason.value)}[/]")
    else:
        times = [
            f"{'tls' if p.service.type == 'turns' else p.service.transport} {ms(p.seconds)}"
            for p in media.probes
            if p.service.type != "stun"
        ]
        words.append(f"[green]TURN[/] {', '.join(times)}")
    relayed = report.check(TURN_RELAY)
    relay = report.result(RelayReport)
    if relayed is not None and relayed.reason is not Reason.SKIPPED:
        if not relayed.success:
            words.append(f"[red]relay {escape.term(relayed.reason.value)}[/]")
        else:
            rtts = [p.seconds for p in relay.probes if p.seconds] if relay is not None else []
            words.append(f"[green]relay[/] {ms(max(rtts))}" if rtts else "[green]relay[/]")
    return "; ".join(words)


COLUMNS: tuple[Column, ...] = (Column("end", "media", _cell),)
