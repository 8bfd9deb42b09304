"""The monitor's HTTP face: /metrics, /healthz and a status page."""

from monitor.server.app import make_app, make_status_app

__all__ = ["make_app", "make_status_app"]
