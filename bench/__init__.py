"""Benchmarks of jitsi-monitor: probe CPU, scale, timing accuracy, /metrics.

Run them with ``bench/run`` (see ``bench/RESULTS.md``); they are kept out of
the test run. Every target (nginx, blackbox_exporter, delay servers) runs in
a process of its own on loopback, apart from the process being measured.
"""
