"""The in-process lab: the type of its fixture and the faults it can play."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from monitor.lab import LabServer

Lab = Callable[..., Awaitable[LabServer]]


# Each fault and what the monitor must report for it.
FAULT_CASES = [
    ("refuse", {"web": "connect_refused"}),
    ("http_500", {"web": "http_status", "configjs": "http_status", "signalling": "skipped"}),
    ("hang", {"web": "timeout", "signalling": "skipped"}),
    ("stream_error", {"web": "ok", "signalling": "stream_error", "focus": "skipped"}),
    ("focus_down", {"signalling": "ok", "focus": "focus_unavailable", "muc": "skipped"}),
    ("focus_silent", {"signalling": "ok", "focus": "focus_unavailable", "muc": "skipped"}),
    ("expired_cert", {"web": "tls_expired", "signalling": "skipped"}),
]
