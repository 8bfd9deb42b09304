"""The web family's views: its JSON keys, its columns of ``check``'s table."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from monitor.checks.family import Column, JsonPart
from monitor.checks.web.probe import WebResult
from monitor.ladder import Check
from monitor.model import Reason, ServerReport

__all__ = ["COLUMNS", "JSON", "cert_days_left", "ms", "page_facts", "tags"]


def cert_days_left(report: ServerReport, now: float | None = None) -> float | None:
    """Days until the server's certificate expires (None: no certificate seen)."""
    web = report.result(WebResult)
    if web is None or web.cert is None:
        return None
    return (web.cert.not_after - (time.time() if now is None else now)) / 86400


def _steps(report: ServerReport) -> Mapping[str, Any]:
    web = report.result(WebResult) or WebResult()
    days = cert_days_left(report)
    return {
        "http": {
            "status": web.http_status,
            "phases": {p.name: round(p.seconds, 6) for p in web.http_phases},
        },
        "tls": None
        if web.cert is None
        else {
            "version": web.cert.tls_version,
            "not_after": web.cert.not_after,
            "days_left": round(days, 2) if days is not None else None,
            "subject": web.cert.subject,
            "issuer": web.cert.issuer,
        },
    }


def _facts(report: ServerReport) -> Mapping[str, Any]:
    web = report.result(WebResult) or WebResult()
    embed = report.check(Check.EMBED)
    config = web.config
    return {
        "embed_limit_seconds": web.embed_limit_seconds,
        "embed": None if embed is None else {"reason": embed.reason.value, "detail": embed.detail},
        "config": None
        if config is None
        else {
            "domain": config.domain,
            "anonymousdomain": config.anonymousdomain,
            "authdomain": config.authdomain,
            "muc": config.muc,
            "muc_fallback": config.muc_fallback,
            "focus": config.focus,
            "websocket": config.websocket,
            "bosh": config.bosh,
            "token_auth_url": config.token_auth_url,
            "disable_iframe_api": config.disable_iframe_api,
            "p2p": {"enabled": config.p2p_enabled, "stun_servers": list(config.stun_servers)},
        },
    }


JSON: tuple[JsonPart, ...] = (JsonPart("steps", _steps), JsonPart("facts", _facts))


def ms(seconds: float | None) -> str:
    """A duration in milliseconds for the table ("-": none)."""
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _phase_cell(name: str) -> Callable[[ServerReport], str]:
    def cell(report: ServerReport) -> str:
        web = report.result(WebResult)
        return ms(web.phase_seconds(name) if web is not None else None)

    return cell


def _cert_days(report: ServerReport) -> str:
    days = cert_days_left(report)
    return "-" if days is None else f"{days:.0f}"


def _embed_limit(report: ServerReport) -> str:
    web = report.result(WebResult)
    embed = web.embed_limit_seconds if web is not None else None
    if embed is None:
        return "unknown"
    return "none" if embed == 0 else f"[yellow]ends after {embed} s[/]"


COLUMNS: tuple[Column, ...] = (
    Column("steps", "DNS", _phase_cell("resolve")),
    Column("steps", "connect", _phase_cell("connect")),
    Column("steps", "TLS", _phase_cell("tls")),
    Column("steps", "first byte", _phase_cell("processing")),
    Column("steps", "cert days", _cert_days, justify="right"),
    Column("facts", "embed limit", _embed_limit),
)


def tags(report: ServerReport) -> tuple[tuple[str, str], ...]:
    """A status page's small label: the embed verdict."""
    embed = report.check(Check.EMBED)
    if embed is None or embed.reason is Reason.SKIPPED:
        return ()
    web = report.result(WebResult)
    limit = web.embed_limit_seconds if web is not None else None
    if embed.success:
        return (("embed ok", "ok"),)
    if embed.reason is Reason.EMBED_LIMITED and limit:
        return ((f"embed limited {limit // 60} min", "bad"),)
    return ((f"embed {embed.reason.value}", "bad"),)


def page_facts(report: ServerReport, public: bool, now: float) -> list[tuple[str, str]]:
    """A server's page: the certificate and config.js facts (in the public view:
    no names, no URLs)."""
    facts: list[tuple[str, str]] = []
    web = report.result(WebResult) or WebResult()
    cert = web.cert
    if cert is not None:
        facts.append(("certificate expires in", f"{(cert.not_after - now) / 86400:.1f} days"))
        facts.append(("TLS version", cert.tls_version))
        if not public:
            facts += [("certificate subject", cert.subject), ("issuer", cert.issuer)]
    config = web.config
    if config is not None:
        if not public:
            for key in ("domain", "muc", "focus", "websocket", "bosh", "token_auth_url"):
                value = getattr(config, key)
                if value:
                    facts.append((key, str(value)))
        facts.append(
            ("signalling", "websocket" if config.websocket else "BOSH" if config.bosh else "none")
        )
        for key, value in (
            ("iframe API disabled", config.disable_iframe_api),
            ("peer-to-peer", config.p2p_enabled),
        ):
            if value is not None:
                facts.append((key, "yes" if value else "no"))
    if web.embed_limit_seconds:
        facts.append(("embed limit", f"{web.embed_limit_seconds // 60} min"))
    return facts
