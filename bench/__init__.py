"""Benchmarks of jitsi-monitor: probe CPU, scale, timing accuracy, /metrics.

Run them with ``bench/run`` (see ``bench/RESULTS.md``); they are kept out of
the test run. Every target (nginx, blackbox_exporter, delay servers) runs in
a process of its own on loopback, apart from the process being measured.
"""

import os as _os
import sys as _sys

# A/B within one run: a worker started with JITSI_BENCH_MONITOR_SRC=DIR measures
# the ``monitor`` package in DIR (e.g. the previous commit's, from ``git archive``)
# instead of this checkout's (see ``accuracy --before``).
if _os.environ.get("JITSI_BENCH_MONITOR_SRC"):
    _sys.path.insert(0, _os.environ["JITSI_BENCH_MONITOR_SRC"])
