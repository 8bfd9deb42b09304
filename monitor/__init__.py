"""jitsi-monitor: health and failover monitor for Jitsi Meet servers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jitsi-monitor")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
