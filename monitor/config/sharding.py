"""Which shard of the fleet each server belongs to: pools stay whole."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config.schema import MonitorConfig


__all__ = ["shard_of"]


def shard_of(config: MonitorConfig, count: int) -> dict[str, int]:
    """Each server's shard (1 to ``count``): servers that share a pool share a shard.

    Pools join their members into groups; a group goes to the shard its
    smallest name hashes to, so the split stays put as servers come and go.
    """
    parent = {s.name: s.name for s in config.servers}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for pool in config.pools:
        members = list(pool.member_names(config.servers))
        for other in members[1:]:
            a, b = root(members[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    out: dict[str, int] = {}
    for name in parent:
        digest = hashlib.sha256(root(name).encode()).digest()
        out[name] = int.from_bytes(digest[:8], "big") % count + 1
    return out
