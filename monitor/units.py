"""Units a setting is written in: durations (``90s``, ``5m``, ``250ms``) and sizes (``4MiB``).

Pydantic types (``Duration``, ``Size``) for every settings model, those of
``monitor.config`` and those of the check families alike; imports nothing
of the monitor.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "Size", "parse_duration", "parse_size"]


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?")
_DURATION_MS = re.compile(r"(\d+(?:\.\d+)?)ms")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``90s``, ``5m``, ``1m30s``, ``500ms``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 60, '60s' or '5m'")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if m := _DURATION_MS.fullmatch(text):
            seconds = float(m.group(1)) / 1000
        elif _NUMBER.fullmatch(text):
            seconds = float(text)
        elif (m := _DURATION.fullmatch(text)) and text:
            hours, minutes, secs = (float(g) if g else 0.0 for g in m.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"{value!r} is not a duration; use seconds or a string such as '90s', '5m'"
        )
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?", re.IGNORECASE)
_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2}
_UNITS["gb"] = 1000**3


def parse_size(value: object) -> int:
    """Bytes from a number or a string like ``64MiB``, ``512KiB``, ``1GiB``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 67108864 or '64MiB'")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (m := _SIZE.fullmatch(value.strip())):
        size = float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
        if math.isfinite(size):
            return int(size)
    raise ValueError(f"{value!r} is not a size; use bytes or a string such as '64MiB'")


Size = Annotated[int, BeforeValidator(parse_size)]
