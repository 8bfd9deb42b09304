"""The browser script, ``/beacon.js``: read once from the package."""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["script"]


@cache
def script() -> bytes:
    return resources.files("monitor.beacon").joinpath("beacon.js").read_bytes()
