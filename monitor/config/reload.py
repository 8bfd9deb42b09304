"""What a reload cannot change: settings read once, when ``serve`` starts."""

from __future__ import annotations

from monitor.config.schema import MonitorConfig

__all__ = ["RESTART_ONLY", "restart_only_changes"]

# Dotted paths of the settings a running ``serve`` keeps until it restarts:
# the listener, the resolver, the bounds and sandbox made at start-up.
RESTART_ONLY = (
    "location",
    "contact",
    "listen",
    "concurrency",
    "dns",
    "state_file",
    "history",
    "ha",
    "status.listen",
    "notify.command_timeout",
    "probe.concurrency",
    "configjs",
)


def _get(config: MonitorConfig, path: str) -> object:
    value: object = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def restart_only_changes(old: MonitorConfig, new: MonitorConfig) -> list[str]:
    """The restart-only settings that differ between ``old`` and ``new``, in
    ``RESTART_ONLY``'s order."""
    return [p for p in RESTART_ONLY if _get(old, p) != _get(new, p)]
