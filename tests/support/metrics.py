"""Reports and targets to render metrics from, without probing anything."""

from __future__ import annotations

from monitor.checks import LADDER, make_report
from monitor.checks.web.probe import WebResult
from monitor.domain import Target
from monitor.model import CertInfo, Check, CheckResult, ConfigFacts, Phase, Reason, ServerReport


def report(name: str, *, up: bool = True, connect: float = 0.01) -> ServerReport:
    web = Reason.OK if up else Reason.HTTP_STATUS
    return make_report(
        LADDER,
        server=name,
        started_at=1000.0,
        finished_at=1001.5,
        duration=1.5,
        checks=(
            CheckResult(Check.WEB, web),
            CheckResult(Check.CONFIGJS, Reason.OK),
            CheckResult(Check.EXTERNAL_API, Reason.OK),
            CheckResult(Check.EMBED, Reason.EMBED_LIMITED),
        ),
        results=(
            WebResult(
                http_phases=(
                    Phase("resolve", 0.001),
                    Phase("connect", connect),
                    Phase("tls", 0.02),
                ),
                http_status=200 if up else 502,
                cert=CertInfo(not_after=2_000_000_000.0, tls_version="TLSv1.3"),
                config=ConfigFacts(domain=f"{name}.example"),
                embed_limit_seconds=300,
                connect_rtt=connect,
            ),
        ),
    )


def targets(*names: str) -> list[Target]:
    return [
        Target(name=n, url=f"https://{n}.example/", kind="public", interval=60, timeout=10)
        for n in names
    ]
