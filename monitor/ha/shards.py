"""Scale-out: which shard each server is in, and how many shards an instance claims.

Pure functions. A server's shard comes from a hash of its name alone (not of
its pool: the leader decides every pool from the shared verdicts, whoever
probed its members), so the split stays put as servers come and go and every
instance computes the same one without asking anybody. An instance claims
shards up to its fair share of the live instances, ``ceil(shards / instances)``,
and lets go of what is over it, so the shards spread out as instances come and
a dead instance's shards are taken by the others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

__all__ = ["claim_order", "fair_share", "shard_of"]


def shard_of(names: Iterable[str], count: int) -> dict[str, int]:
    """Each server's shard, 0 to ``count - 1``."""
    return {
        name: int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count
        for name in names
    }


def fair_share(count: int, instances: int) -> int:
    """How many of ``count`` shards one of ``instances`` live instances may hold."""
    return math.ceil(count / max(1, instances))


def claim_order(count: int, instance: str, held: Iterable[int]) -> list[int]:
    """The shards not ``held``, in the order this instance tries them: from a place
    of its own name's, so instances starting together do not all race for shard 0."""
    start = int.from_bytes(hashlib.sha256(instance.encode()).digest()[:4], "big") % count
    mine = set(held)
    return [s for s in ((start + i) % count for i in range(count)) if s not in mine]
