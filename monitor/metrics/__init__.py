"""Prometheus metrics, rendered from State in the text exposition format.

- ``families``: the ladder's, the pools' and the monitor's metric families
  (each check family declares its own, in ``monitor.checks.<family>.metrics``);
- ``lines``: one server's lines, formatted once per report;
- ``exposition``: a scrape's answer, from the kept lines plus the pools' and
  the monitor's own families;
- ``selfmetrics``: ``process_*`` and ``python_*`` from prometheus_client's collectors.

``Exposition`` is imported on first use (PEP 562), so that importing a
submodule does not pull in the exposition and, through it, the families.
The text format's pieces are in ``monitor.promtext``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.metrics.exposition import CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, Exposition

__all__ = ["CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "Exposition"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from monitor.metrics import exposition

        return getattr(exposition, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
