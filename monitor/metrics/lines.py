"""The lines of one server: formatted once per report and kept by the exposition."""

from __future__ import annotations

import math
from collections.abc import Iterable

from monitor import escape
from monitor.config import Target
from monitor.metrics.families import SERVER_FAMILIES
from monitor.model import MediaReport, ServerReport

__all__ = ["line", "server_lines"]

_SERVER_FAMILY_NAMES = tuple(f.name for f in SERVER_FAMILIES)

# A label value as the text format wants it, control characters shown as escapes.
_esc = escape.label


def _num(value: float) -> str:
    """A sample value as Prometheus writes it."""
    value = float(value)
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def line(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    """One sample with its labels in name order (as the tests and promtool read them)."""
    inner = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(labels))
    return f"{name}{{{inner}}} {_num(value)}\n"


def server_lines(
    target: Target,
    report: ServerReport | None,
    location: str,
    extra: tuple[str, ...],
    rtt_tcp: float | None,
    rtt_xmpp: float | None,
) -> tuple[bytes, ...]:
    """This server's lines, encoded, one string per family of SERVER_FAMILIES (in its order)."""
    loc = _esc(location)
    srv = _esc(target.name)
    ls = f'location="{loc}",server="{srv}"'
    user = dict(target.labels)
    domain = report.config.domain if report and report.config else None
    out: dict[str, str] = dict.fromkeys(_SERVER_FAMILY_NAMES, "")
    out["jitsi_server_info"] = line(
        "jitsi_server_info",
        [
            ("server", target.name),
            ("location", location),
            ("kind", target.kind),
            ("domain", domain or ""),
            ("url", target.url),
            *((k, user.get(k, "")) for k in extra),
        ],
        1.0,
    )
    out["jitsi_probe_interval_seconds"] = (
        f"jitsi_probe_interval_seconds{{{ls}}} {_num(target.interval)}\n"
    )
    rtt = ""
    for method, value in (("tcp_connect", rtt_tcp), ("xmpp_ping", rtt_xmpp)):
        if value is not None:
            rtt += f'jitsi_rtt_seconds{{location="{loc}",method="{method}",server="{srv}"}} '
            rtt += f"{_num(value)}\n"
    out["jitsi_rtt_seconds"] = rtt
    if report is not None:
        _report_lines(out, report, loc, srv, ls)
    if len(out) != len(_SERVER_FAMILY_NAMES):
        raise KeyError(f"not a server family: {sorted(set(out) - set(_SERVER_FAMILY_NAMES))}")
    return tuple(out[name].encode("utf-8", "replace") for name in _SERVER_FAMILY_NAMES)


def _report_lines(out: dict[str, str], report: ServerReport, loc: str, srv: str, ls: str) -> None:
    """The lines that come from a report, by family name."""
    out["jitsi_server_up"] = f"jitsi_server_up{{{ls}}} {'1.0' if report.up else '0.0'}\n"
    out["jitsi_check_success"] = "".join(
        f'jitsi_check_success{{check="{r.check.value}",{ls}}} {"1.0" if r.success else "0.0"}\n'
        for r in report.checks
    )
    out["jitsi_check_reason_info"] = "".join(
        f'jitsi_check_reason_info{{check="{r.check.value}",location="{loc}",'
        f'reason="{r.reason.value}",server="{srv}"}} 1.0\n'
        for r in report.checks
    )
    out["jitsi_probe_duration_seconds"] = (
        f"jitsi_probe_duration_seconds{{{ls}}} {_num(report.duration)}\n"
    )
    for family, phases in (
        ("jitsi_http_duration_seconds", report.http_phases),
        ("jitsi_xmpp_duration_seconds", report.xmpp_phases),
    ):
        out[family] = "".join(
            f'{family}{{location="{loc}",phase="{_esc(p.name)}",server="{srv}"}} '
            f"{_num(p.seconds)}\n"
            for p in phases
        )
    out["jitsi_jwt_case_success"] = "".join(
        f'jitsi_jwt_case_success{{case="{_esc(case)}",{ls}}} {"1.0" if passed else "0.0"}\n'
        for case, passed in report.jwt_cases
    )
    out["jitsi_jwt_case_age_seconds"] = "".join(
        f'jitsi_jwt_case_age_seconds{{case="{_esc(case)}",{ls}}} {_num(round(age, 3))}\n'
        for case, age in report.jwt_ages
    )
    if report.http_status is not None:
        out["jitsi_http_status_code"] = (
            f"jitsi_http_status_code{{{ls}}} {_num(report.http_status)}\n"
        )
    if report.cert is not None:
        out["jitsi_ssl_earliest_cert_expiry"] = (
            f"jitsi_ssl_earliest_cert_expiry{{{ls}}} {_num(report.cert.not_after)}\n"
        )
        if report.cert.tls_version:
            version = _esc(report.cert.tls_version)
            out["jitsi_tls_version_info"] = (
                f'jitsi_tls_version_info{{{ls},version="{version}"}} 1.0\n'
            )
    if report.embed_limit_seconds is not None:
        out["jitsi_embed_limit_seconds"] = (
            f"jitsi_embed_limit_seconds{{{ls}}} {_num(report.embed_limit_seconds)}\n"
        )
    out["jitsi_last_probe_timestamp_seconds"] = (
        f"jitsi_last_probe_timestamp_seconds{{{ls}}} {_num(report.finished_at)}\n"
    )
    if report.media is not None:
        _media_lines(out, report.media, report.finished_at, ls)


def _media_line(name: str, ls: str, labels: list[tuple[str, str]], value: float) -> str:
    inner = "".join(f',{k}="{_esc(v)}"' for k, v in sorted(labels))
    return f"{name}{{{ls}{inner}}} {_num(value)}\n"


def _media_lines(out: dict[str, str], media: MediaReport, now: float, ls: str) -> None:
    """The media families: per service and transport (at most media.max_services of each)."""
    for service in media.services:
        out["jitsi_media_service_info"] += _media_line(
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
        labels = [("service", service.name), ("transport", service.transport)]
        labels.append(("type", service.type))
        out["jitsi_media_check_success"] += _media_line(
            "jitsi_media_check_success", ls, labels, probe.success
        )
        if probe.success and probe.seconds is not None:
            stun = service.type == "stun"
            family = "jitsi_stun_rtt_seconds" if stun else "jitsi_turn_allocate_seconds"
            out[family] += _media_line(family, ls, labels, probe.seconds)
    expiry = media.turn_credentials_expiry
    if expiry is not None:
        out["jitsi_turn_credentials_expiry_timestamp_seconds"] = _media_line(
            "jitsi_turn_credentials_expiry_timestamp_seconds", ls, [], expiry
        )
    out["jitsi_media_age_seconds"] = _media_line(
        "jitsi_media_age_seconds", ls, [], round(max(0.0, now - media.at), 3)
    )
