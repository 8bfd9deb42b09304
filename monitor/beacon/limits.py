"""Token buckets per client and per prefix, in bounded memory.

A bucket holds up to ``burst`` beacons and refills at ``rate`` per second.
Each table keeps at most ``max_keys`` buckets: when full, the bucket used
least recently goes (a new key then starts full, so a flood of fresh
addresses gains at most one burst each; the per-prefix table and the
window's per-prefix cap bound what that buys).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

__all__ = ["ADDRESS_LIMIT", "MAX_KEYS", "PREFIX_LIMIT", "Buckets", "Limit"]

# Buckets kept per table at most: some 100 bytes each.
MAX_KEYS: Final = 20_000


@dataclass(frozen=True, slots=True)
class Limit:
    burst: float
    rate: float  # beacons per second


# One browser samples once per period; behind a NAT a few hundred share an
# address, a campus shares a /24: a burst for a lecture's start, then a trickle.
ADDRESS_LIMIT: Final = Limit(burst=20.0, rate=1 / 30)
PREFIX_LIMIT: Final = Limit(burst=200.0, rate=1 / 3)


class Buckets:
    """One table of token buckets keyed by opaque bytes."""

    def __init__(self, limit: Limit, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: bytes, now: float) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        tokens, at = self._buckets.pop(key, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + max(0.0, now - at) * self.limit.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
