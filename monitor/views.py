"""Plain-data and human views of reports, shared by the CLI and the HTTP app."""

from __future__ import annotations

import time
from typing import Any

from monitor.config import Target
from monitor.model import Check, MediaReport, ServerReport
from monitor.state import State

__all__ = ["cert_days_left", "media_dict", "pool_dict", "report_dict", "verdict"]


def verdict(report: ServerReport | None) -> str:
    """``up``, ``down`` or ``unknown`` (not probed yet)."""
    if report is None:
        return "unknown"
    return "up" if report.up else "down"


def cert_days_left(report: ServerReport, now: float | None = None) -> float | None:
    if report.cert is None:
        return None
    return (report.cert.not_after - (time.time() if now is None else now)) / 86400


def report_dict(target: Target, report: ServerReport | None) -> dict[str, Any]:
    """A JSON-ready description of one server and its latest report."""
    out: dict[str, Any] = {
        "server": target.name,
        "url": target.url,
        "kind": target.kind,
        "labels": dict(target.labels),
        "verdict": verdict(report),
    }
    if report is None:
        return out
    failure = report.first_failure
    embed = report.check(Check.EMBED)
    days = cert_days_left(report)
    out.update(
        {
            "up": report.up,
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "duration_seconds": round(report.duration, 6),
            "http": {
                "status": report.http_status,
                "phases": {p.name: round(p.seconds, 6) for p in report.http_phases},
            },
            "tls": None
            if report.cert is None
            else {
                "version": report.cert.tls_version,
                "not_after": report.cert.not_after,
                "days_left": round(days, 2) if days is not None else None,
                "subject": report.cert.subject,
                "issuer": report.cert.issuer,
            },
            "xmpp": {
                "phases": {p.name: round(p.seconds, 6) for p in report.xmpp_phases},
                "ping_rtt_seconds": None if report.ping_rtt is None else round(report.ping_rtt, 6),
                "role": report.role,
                "affiliation": report.affiliation,
            },
            "jwt": _jwt_dict(report),
            "embed_limit_seconds": report.embed_limit_seconds,
            "embed": None
            if embed is None
            else {"reason": embed.reason.value, "detail": embed.detail},
            "config": None
            if report.config is None
            else {
                "domain": report.config.domain,
                "anonymousdomain": report.config.anonymousdomain,
                "authdomain": report.config.authdomain,
                "muc": report.config.muc,
                "muc_fallback": report.config.muc_fallback,
                "focus": report.config.focus,
                "websocket": report.config.websocket,
                "bosh": report.config.bosh,
                "token_auth_url": report.config.token_auth_url,
                "disable_iframe_api": report.config.disable_iframe_api,
                "p2p": {
                    "enabled": report.config.p2p_enabled,
                    "stun_servers": list(report.config.stun_servers),
                },
            },
            "checks": [
                {
                    "check": r.check.value,
                    "success": r.success,
                    "reason": r.reason.value,
                    "detail": r.detail,
                    "phases": {p.name: round(p.seconds, 6) for p in r.phases},
                }
                for r in report.checks
            ],
            "first_failure": None
            if failure is None
            else {
                "check": failure.check.value,
                "reason": failure.reason.value,
                "detail": failure.detail,
            },
        }
    )
    if report.media is not None:
        out["media"] = media_dict(report.media)
    return out


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


def _jwt_dict(report: ServerReport) -> dict[str, Any] | None:
    """The token cases, each with how old its verdict is (the matrix runs at its interval)."""
    if not report.jwt_cases:
        return None
    ages = dict(report.jwt_ages)
    return {
        "matrix_at": report.jwt_matrix_at,
        "cases": {
            case.value: {
                "passed": passed,
                "age_seconds": None if case not in ages else round(ages[case], 3),
            }
            for case, passed in report.jwt_cases
        },
    }


def pool_dict(state: State, name: str) -> dict[str, Any]:
    """A JSON-ready description of a pool: its choice, why, and each candidate."""
    pool = state.pools[name]
    pool_state = state.pool_states.get(name)
    last = next((d for d in reversed(state.decisions) if d.pool == name), None)
    stale = bool(pool_state and pool_state.stale)
    return {
        "pool": name,
        "chosen": None if pool_state is None or stale else pool_state.current,
        "stale": stale,
        "last_choice": pool_state.current if pool_state else None,
        "changed_at": pool_state.changed_at if pool_state and pool_state.changed_at else None,
        "why": None
        if last is None
        else {"reason": last.reason, "detail": last.detail, "at": last.at},
        "require": list(pool.require),
        "embedding": pool.embedding,
        "failovers": dict(pool_state.failovers) if pool_state else {},
        "candidates": [
            {
                "server": c.server,
                "eligible": c.eligible,
                "why": c.why or None,
                "tier": c.tier + 1,
                "score_seconds": None if c.score is None else round(c.score, 6),
            }
            for c in state.pool_candidates.get(name, [])
        ],
    }
