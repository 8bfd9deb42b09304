"""The Prometheus text format's pieces: a metric family's header, a sample line.

Shared by the exposition (``monitor.metrics``) and the check families, which
declare their own metric families and make their own lines; imports nothing
of the monitor but ``escape``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from monitor import escape

__all__ = ["MetricFamily", "esc", "gauge", "info", "line", "num"]


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One metric family: its sample name, type and help text."""

    name: str
    type: str  # gauge, counter or info
    help: str

    def header(self, openmetrics: bool) -> str:
        """HELP and TYPE lines, in the text format or in OpenMetrics."""
        if not openmetrics:
            text = self.help.replace("\\", r"\\").replace("\n", r"\n")
            kind = "gauge" if self.type == "info" else self.type
            return f"# HELP {self.name} {text}\n# TYPE {self.name} {kind}\n"
        text = self.help.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        base = self.name
        if self.type == "info":
            base = base.removesuffix("_info")
        elif self.type == "counter":
            base = base.removesuffix("_total")
        return f"# HELP {base} {text}\n# TYPE {base} {self.type}\n"


def gauge(name: str, help: str) -> MetricFamily:
    return MetricFamily(name, "gauge", help)


def info(name: str, help: str) -> MetricFamily:
    return MetricFamily(name, "info", help)


# A label value as the text format wants it, control characters shown as escapes.
esc = escape.label


def num(value: float) -> str:
    """A sample value as Prometheus writes it."""
    value = float(value)
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def line(name: str, labels: Iterable[tuple[str, str]], value: float) -> str:
    """One sample with its labels in name order (as the tests and promtool read them)."""
    inner = ",".join(f'{k}="{esc(v)}"' for k, v in sorted(labels))
    return f"{name}{{{inner}}} {num(value)}\n"
