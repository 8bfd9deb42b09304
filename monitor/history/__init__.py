"""History that survives restarts: an SQLite file written off the event loop.

- ``records``: the rows kept, made from reports and pool decisions (sizes bounded);
- ``schema``: the tables (reports partitioned by UTC day), opening, moving a bad file aside;
- ``writer``: the worker thread that writes batches, rolls up and prunes;
- ``queries``: what the status pages read (uptime, latency, incidents, pool events);
- ``store``: ``History``, the one object ``serve`` holds: queue on the loop, reads in a thread.
"""

from monitor.history.queries import (
    CheckSpan,
    Incident,
    LatencyPoint,
    PoolEvent,
    ServerSummary,
)
from monitor.history.records import PoolRecord, ReportRecord, pool_record, report_record
from monitor.history.store import History, open_history
from monitor.history.writer import Limits

__all__ = [
    "CheckSpan",
    "History",
    "Incident",
    "LatencyPoint",
    "Limits",
    "PoolEvent",
    "PoolRecord",
    "ReportRecord",
    "ServerSummary",
    "open_history",
    "pool_record",
    "report_record",
]
