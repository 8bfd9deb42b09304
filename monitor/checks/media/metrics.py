"""The media family's metric families and their lines: per service and transport
(at most ``media.max_services`` of each), the TURN relay's round trip, the TURN
credentials' expiry, the age of the verdicts."""

from __future__ import annotations

from collections.abc import Mapping

from monitor.checks.family import Labels, Slot
from monitor.checks.media.relay_report import RelayReport
from monitor.checks.media.result import MediaReport
from monitor.model import ServerReport
from monitor.promtext import MetricFamily, esc, gauge, info, num

__all__ = ["METRICS", "lines"]

METRICS: tuple[tuple[Slot, MetricFamily], ...] = (
    (
        "end",
        info(
            "jitsi_media_service_info",
            "A STUN or TURN service of the server: where it came from (extdisco or config.js), "
            "whether credentials came with it, whether it is Google's; always 1.",
        ),
    ),
    (
        "end",
        gauge(
            "jitsi_media_check_success",
            "1 when the service answered (STUN Binding, or TURN Allocate and release), else 0.",
        ),
    ),
    ("end", gauge("jitsi_stun_rtt_seconds", "Round trip of the STUN Binding request.")),
    (
        "end",
        gauge(
            "jitsi_turn_allocate_seconds",
            "How long the TURN Allocate took with the announced credentials "
            "(401 challenge included).",
        ),
    ),
    (
        "end",
        gauge(
            "jitsi_turn_relay_rtt_seconds",
            "Round trip of a datagram relayed from one TURN allocation to another on the same "
            "service and back (turn_relay); absent when it did not come back.",
        ),
    ),
    (
        "end",
        gauge(
            "jitsi_turn_credentials_expiry_timestamp_seconds",
            "When the TURN credentials the server announced expire, as a Unix timestamp.",
        ),
    ),
    (
        "end",
        gauge(
            "jitsi_media_age_seconds",
            "How old the media verdicts were at the server's last report (they run every "
            "media.interval and are carried in between).",
        ),
    ),
)


def _line(name: str, ls: str, labels: list[tuple[str, str]], value: float) -> str:
    inner = "".join(f',{k}="{esc(v)}"' for k, v in sorted(labels))
    return f"{name}{{{ls}{inner}}} {num(value)}\n"


def lines(report: ServerReport, labels: Labels) -> Mapping[str, str]:
    """The media family's lines of one report, by metric family name."""
    media = report.result(MediaReport)
    if media is None:
        return {}
    ls = labels.both
    out = {name: "" for _, name in ((s, f.name) for s, f in METRICS)}
    for service in media.services:
        out["jitsi_media_service_info"] += _line(
            "jitsi_media_service_info",
            ls,
            [
                ("service", service.name),
                ("transport", service.transport),
                ("type", service.type),
                ("source", service.source),
                ("credentials", "true" if service.credentials else "false"),
                ("google", "true" if service.google else "false"),
            ],
            1.0,
        )
    for probe in media.probes:
        service = probe.service
        labels_ = [("service", service.name), ("transport", service.transport)]
        labels_.append(("type", service.type))
        out["jitsi_media_check_success"] += _line(
            "jitsi_media_check_success", ls, labels_, probe.success
        )
        if probe.success and probe.seconds is not None:
            stun = service.type == "stun"
            family = "jitsi_stun_rtt_seconds" if stun else "jitsi_turn_allocate_seconds"
            out[family] += _line(family, ls, labels_, probe.seconds)
    relay = report.result(RelayReport)
    for relayed in relay.probes if relay is not None else ():
        if relayed.success and relayed.seconds is not None:
            service = relayed.service
            out["jitsi_turn_relay_rtt_seconds"] += _line(
                "jitsi_turn_relay_rtt_seconds",
                ls,
                [
                    ("service", service.name),
                    ("transport", service.transport),
                    ("type", service.type),
                ],
                relayed.seconds,
            )
    expiry = media.turn_credentials_expiry
    if expiry is not None:
        out["jitsi_turn_credentials_expiry_timestamp_seconds"] = _line(
            "jitsi_turn_credentials_expiry_timestamp_seconds", ls, [], expiry
        )
    out["jitsi_media_age_seconds"] = _line(
        "jitsi_media_age_seconds", ls, [], round(max(0.0, report.finished_at - media.at), 3)
    )
    return out
