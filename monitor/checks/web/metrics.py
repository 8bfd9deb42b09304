"""The web family's metric families and their lines: the page GET's phases and
status, the certificate, the TLS version, the embed limit."""

from __future__ import annotations

from collections.abc import Mapping

from monitor.checks.family import Labels, Slot
from monitor.checks.web.probe import WebResult
from monitor.model import ServerReport
from monitor.promtext import MetricFamily, esc, gauge, info, num

__all__ = ["METRICS", "lines"]

METRICS: tuple[tuple[Slot, MetricFamily], ...] = (
    (
        "steps",
        gauge(
            "jitsi_http_duration_seconds",
            "Duration of each phase of the GET of the server's page, summed over redirects.",
        ),
    ),
    ("facts", gauge("jitsi_http_status_code", "HTTP status of the server's page after redirects.")),
    (
        "facts",
        gauge(
            "jitsi_ssl_earliest_cert_expiry",
            "Expiry of the server's certificate as a Unix timestamp.",
        ),
    ),
    ("facts", info("jitsi_tls_version_info", "TLS version of the server's connection.")),
    (
        "facts",
        gauge(
            "jitsi_embed_limit_seconds",
            "Seconds after which embedded meetings end (300 with disableIframeAPI), 0 if never.",
        ),
    ),
)


def lines(report: ServerReport, labels: Labels) -> Mapping[str, str]:
    """The web family's lines of one report, by metric family name."""
    web = report.result(WebResult)
    if web is None:
        return {}
    loc, srv, ls = labels.location, labels.server, labels.both
    out = {
        "jitsi_http_duration_seconds": "".join(
            f'jitsi_http_duration_seconds{{location="{loc}",phase="{esc(p.name)}",'
            f'server="{srv}"}} {num(p.seconds)}\n'
            for p in web.http_phases
        )
    }
    if web.http_status is not None:
        out["jitsi_http_status_code"] = f"jitsi_http_status_code{{{ls}}} {num(web.http_status)}\n"
    if web.cert is not None:
        out["jitsi_ssl_earliest_cert_expiry"] = (
            f"jitsi_ssl_earliest_cert_expiry{{{ls}}} {num(web.cert.not_after)}\n"
        )
        if web.cert.tls_version:
            version = esc(web.cert.tls_version)
            out["jitsi_tls_version_info"] = (
                f'jitsi_tls_version_info{{{ls},version="{version}"}} 1.0\n'
            )
    if web.embed_limit_seconds is not None:
        out["jitsi_embed_limit_seconds"] = (
            f"jitsi_embed_limit_seconds{{{ls}}} {num(web.embed_limit_seconds)}\n"
        )
    return out
