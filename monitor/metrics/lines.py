"""The lines of one server: formatted once per report and kept by the exposition.

The ladder's own families are made here; each check family makes its own
(``Family.lines``), and ``server_families`` says the order of them all.
"""

from __future__ import annotations

from monitor.checks import FAMILIES
from monitor.checks.family import Family, Labels
from monitor.checks.web.probe import WebResult
from monitor.domain import Target
from monitor.metrics.families import SERVER_HEAD, SERVER_TAIL
from monitor.model import ServerReport
from monitor.promtext import MetricFamily, esc, line, num

__all__ = ["line", "server_families", "server_lines"]


def server_families(families: tuple[Family, ...] = FAMILIES) -> tuple[MetricFamily, ...]:
    """Every per-server metric family, in output order: the ladder's first ones,
    the families' ``steps`` and ``facts`` ones, the ladder's last ones, the
    families' ``end`` ones (``monitor.checks.family.Slot``)."""

    def slot(name: str) -> tuple[MetricFamily, ...]:
        return tuple(m for f in families for s, m in f.metrics if s == name)

    return (*SERVER_HEAD, *slot("steps"), *slot("facts"), *SERVER_TAIL, *slot("end"))


def server_lines(
    target: Target,
    report: ServerReport | None,
    location: str,
    extra: tuple[str, ...],
    rtt_tcp: float | None,
    rtt_xmpp: float | None,
    families: tuple[Family, ...] = FAMILIES,
    names: tuple[str, ...] | None = None,
) -> tuple[bytes, ...]:
    """This server's lines, encoded, one string per family of ``server_families`` (in
    its order; ``names`` are their names, when the caller has them)."""
    names = names if names is not None else tuple(f.name for f in server_families(families))
    labels = Labels(esc(location), esc(target.name))
    loc, srv, ls = labels.location, labels.server, labels.both
    user = dict(target.labels)
    web = report.result(WebResult) if report is not None else None
    domain = web.config.domain if web is not None and web.config is not None else None
    out: dict[str, str] = dict.fromkeys(names, "")
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
        f"jitsi_probe_interval_seconds{{{ls}}} {num(target.interval)}\n"
    )
    rtt = ""
    for method, value in (("tcp_connect", rtt_tcp), ("xmpp_ping", rtt_xmpp)):
        if value is not None:
            rtt += f'jitsi_rtt_seconds{{location="{loc}",method="{method}",server="{srv}"}} '
            rtt += f"{num(value)}\n"
    out["jitsi_rtt_seconds"] = rtt
    if report is not None:
        _report_lines(out, report, labels)
        for family in families:
            if family.lines is not None:
                out.update(family.lines(report, labels))
    if len(out) != len(names):
        raise KeyError(f"not a server family: {sorted(set(out) - set(names))}")
    return tuple(out[name].encode("utf-8", "replace") for name in names)


def _report_lines(out: dict[str, str], report: ServerReport, labels: Labels) -> None:
    """The ladder's own lines that come from a report, by family name."""
    loc, srv, ls = labels.location, labels.server, labels.both
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
        f"jitsi_probe_duration_seconds{{{ls}}} {num(report.duration)}\n"
    )
    out["jitsi_last_probe_timestamp_seconds"] = (
        f"jitsi_last_probe_timestamp_seconds{{{ls}}} {num(report.finished_at)}\n"
    )
