"""The beacons' metric families, rendered from ``Beacons`` at each scrape."""

from __future__ import annotations

import time

from monitor.beacon.beacons import Beacons
from monitor.beacon.validate import REASONS
from monitor.domain import ALL_REGIONS
from monitor.promtext import MetricFamily, gauge
from monitor.promtext import line as _line

__all__ = ["BEACON_FAMILIES", "beacon_metrics"]

BEACON_FAMILIES: tuple[MetricFamily, ...] = (
    gauge(
        "jitsi_user_rtt_seconds",
        "Users' round trip to the server from their browsers (beacons in the window), "
        'by region (region="all": every region) and quantile (0.5, 0.9).',
    ),
    gauge(
        "jitsi_user_rtt_samples",
        "Beacons in the window that count for the server (each prefix capped), by region.",
    ),
    gauge("jitsi_user_rtt_prefixes", "Distinct client prefixes (/24, /48) in the window."),
    MetricFamily("jitsi_beacons_accepted_total", "counter", "Beacons taken into the window."),
    MetricFamily(
        "jitsi_beacons_rejected_total", "counter", "Beacons refused, by reason (a closed set)."
    ),
)


def beacon_metrics(beacons: Beacons, location: str, openmetrics: bool) -> str:
    """Every beacon family: the members of every pool, then the counters."""
    now = time.time()
    lo = ("location", location)
    out: dict[str, list[str]] = {f.name: [] for f in BEACON_FAMILIES}
    members = dict.fromkeys(s for p in beacons.state.pools.values() for s in p.servers)
    for server in members:
        if server not in beacons.state.targets:
            continue
        every = beacons.window.stats(server, now)
        out["jitsi_user_rtt_prefixes"].append(
            _line("jitsi_user_rtt_prefixes", [("server", server), lo], every.prefixes)
        )
        for region, stats in [(ALL_REGIONS, every), *beacons.regions(server, now)]:
            labels = [("server", server), ("region", region), lo]
            out["jitsi_user_rtt_samples"].append(
                _line("jitsi_user_rtt_samples", labels, stats.samples)
            )
            for quantile, value in (("0.5", stats.p50), ("0.9", stats.p90)):
                if value is not None:
                    out["jitsi_user_rtt_seconds"].append(
                        _line("jitsi_user_rtt_seconds", [*labels, ("quantile", quantile)], value)
                    )
    out["jitsi_beacons_accepted_total"].append(
        _line("jitsi_beacons_accepted_total", [lo], beacons.accepted)
    )
    for reason in REASONS:
        out["jitsi_beacons_rejected_total"].append(
            _line(
                "jitsi_beacons_rejected_total", [("reason", reason), lo], beacons.rejected[reason]
            )
        )
    return "".join(f.header(openmetrics) + "".join(out[f.name]) for f in BEACON_FAMILIES)
