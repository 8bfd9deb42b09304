"""The monitor's HTTP face: /metrics, /healthz and a status page."""

from monitor.server.app import make_app

__all__ = ["make_app"]
