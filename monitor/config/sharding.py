"""Which shard of the fleet each server belongs to: pools stay whole.

Plain names in, shards out: it knows nothing of the config's models, so that
``schema`` can use it without a circle (``schema.shard_of`` feeds it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = ["shards"]


def shards(names: Iterable[str], groups: Iterable[Sequence[str]], count: int) -> dict[str, int]:
    """Each server's shard (1 to ``count``): servers in one group share a shard.

    Groups (the pools' members) join servers; a joined set goes to the shard
    its smallest name hashes to, so the split stays put as servers come and go.
    """
    parent = {name: name for name in names}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for members in groups:
        for other in members[1:]:
            a, b = root(members[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    out: dict[str, int] = {}
    for name in parent:
        digest = hashlib.sha256(root(name).encode()).digest()
        out[name] = int.from_bytes(digest[:8], "big") % count + 1
    return out
