"""The text format's pieces: a sample value, a label value, one line.

Shared by the exposition and the check families' lines; imports nothing of
the monitor but ``escape``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from monitor import escape

__all__ = ["esc", "line", "num"]

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
