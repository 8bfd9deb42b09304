"""The monitor's own vital signs: prometheus_client's process, platform and GC collectors.

Every Prometheus client library and blackbox_exporter export ``process_*``
(resident memory, CPU seconds, open and maximum file descriptors, start
time) and ``python_*`` (garbage collections, the interpreter's version).
These come from prometheus_client's own collectors on a registry of their
own, rendered by its own writer and appended to the monitor's exposition
(``Exposition.parts``); nothing in them comes from a probed server.

On a system without ``/proc`` the process collector exports nothing, as in
prometheus_client itself.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

__all__ = ["SelfMetrics"]


class SelfMetrics:
    """The process_* and python_* families, in either exposition format."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)
        GCCollector(registry=self._registry)

    def render(self, openmetrics: bool) -> bytes:
        """The families now; without OpenMetrics' ``# EOF`` (the caller ends the body)."""
        if not openmetrics:
            return generate_latest(self._registry)
        text: bytes = generate_openmetrics(self._registry)  # type: ignore[no-untyped-call]
        return text.removesuffix(b"# EOF\n")
