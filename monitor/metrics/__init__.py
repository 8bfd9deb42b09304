"""Prometheus metrics, rendered from State in the text exposition format.

- ``families``: every family's name, type and help, declared once;
- ``lines``: one server's lines, formatted once per report;
- ``exposition``: a scrape's answer, from the kept lines plus the pools' and
  the monitor's own families;
- ``selfmetrics``: ``process_*`` and ``python_*`` from prometheus_client's collectors.
"""

from monitor.metrics.exposition import CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, Exposition
from monitor.metrics.families import FAMILIES, Family

__all__ = ["CONTENT_TYPE", "FAMILIES", "OPENMETRICS_CONTENT_TYPE", "Exposition", "Family"]
