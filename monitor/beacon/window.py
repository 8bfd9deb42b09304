"""The users' round trips of the last ``window`` seconds, per member and region.

Every sample carries the keyed hash of its sender's prefix (``prefix``).
What comes out is robust to a few senders lying:

- each prefix weighs at most ``cap`` samples (its latest), so a flood from
  one prefix counts no more than a few honest browsers there;
- the users' score of a member is a trimmed median of the per-prefix
  medians: each prefix one vote, the lowest and highest ``TRIM`` of the
  votes dropped;
- it counts only when ``min_prefixes`` prefixes and ``min_samples`` capped
  samples are in the window.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_SAMPLES", "TRIM", "Stats", "Window", "quantile", "trimmed_median"]

# Samples kept per member at most (the oldest go first): bounds memory
# whatever the window and the rate limits.
MAX_SAMPLES: Final = 20_000
# The share of votes dropped at each end before the median.
TRIM: Final = 0.2


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of sorted, non-empty ``values``."""
    rank = max(1, math.ceil(q * len(values)))
    return values[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def trimmed_median(votes: Iterable[float], trim: float = TRIM) -> float | None:
    """The median of ``votes`` once the lowest and highest ``trim`` share are dropped."""
    ordered = sorted(votes)
    if not ordered:
        return None
    cut = math.floor(len(ordered) * trim)
    kept = ordered[cut : len(ordered) - cut] or ordered
    return median(kept)


@dataclass(frozen=True, slots=True)
class Stats:
    """One member's view from the users (in one region, or all)."""

    samples: int  # capped samples in the window
    prefixes: int  # distinct client prefixes among them
    p50: float | None  # seconds
    p90: float | None
    score: float | None  # the trimmed median of the per-prefix medians


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float
    prefix: bytes
    region: str
    seconds: float


class Window:
    """Samples per member for ``seconds``; ``cap`` samples per prefix count."""

    def __init__(self, seconds: float, cap: int) -> None:
        self.seconds = seconds
        self.cap = max(1, cap)
        self._samples: dict[str, deque[_Sample]] = defaultdict(lambda: deque(maxlen=MAX_SAMPLES))
        # Stats by (server, region, second): a pool is judged after every
        # ladder of a member, and each judgement reads every member's stats.
        self._cache: dict[tuple[str, str | None], Stats] = {}
        self._second = -1

    def add(self, server: str, prefix: bytes, region: str, seconds: float, now: float) -> None:
        self._samples[server].append(_Sample(now, prefix, region, seconds))
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the cached stats (new samples, a new cap or window)."""
        self._cache.clear()

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the samples of members no longer configured."""
        self.invalidate()
        wanted = set(keep)
        for server in [s for s in self._samples if s not in wanted]:
            del self._samples[server]

    def _live(self, server: str, now: float) -> deque[_Sample]:
        samples = self._samples.get(server)
        if samples is None:
            return deque()
        horizon = now - self.seconds
        while samples and samples[0].at < horizon:
            samples.popleft()
        return samples

    def regions(self, server: str, now: float) -> list[str]:
        return sorted({s.region for s in self._live(server, now)})

    def servers(self) -> list[str]:
        return sorted(self._samples)

    def stats(self, server: str, now: float, region: str | None = None) -> Stats:
        """The member's stats over the window (one region, or all when None)."""
        if int(now) != self._second:
            self._cache.clear()  # another second: the window has moved
            self._second = int(now)
        cached = self._cache.get((server, region))
        if cached is None:
            cached = self._cache[(server, region)] = self._stats(server, now, region)
        return cached

    def _stats(self, server: str, now: float, region: str | None) -> Stats:
        by_prefix: dict[bytes, list[float]] = defaultdict(list)
        # Newest first: each prefix's latest ``cap`` samples count.
        for sample in reversed(self._live(server, now)):
            if region is not None and sample.region != region:
                continue
            kept = by_prefix[sample.prefix]
            if len(kept) < self.cap:
                kept.append(sample.seconds)
        values = sorted(v for kept in by_prefix.values() for v in kept)
        if not values:
            return Stats(0, 0, None, None, None)
        score = trimmed_median(median(kept) for kept in by_prefix.values())
        return Stats(
            len(values), len(by_prefix), quantile(values, 0.5), quantile(values, 0.9), score
        )
