"""The beacons' one entry point: checks, limits, the window and the users' score.

``Beacons`` is made by the service from the ``beacon`` block (as a
``BeaconPolicy``) and reads the pools and servers from ``State``: a beacon
may name only members of the pool it names. The HTTP layer
(``monitor.server.beacon``) hands it each body with its ``Origin`` and the
client's address; the address is used for the limits and the prefix hash
here, then dropped.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin

from monitor.beacon.limits import ADDRESS_LIMIT, PREFIX_LIMIT, Buckets
from monitor.beacon.prefix import Blinder, client_prefix
from monitor.beacon.validate import MAX_MEMBERS, Beacon, Rejected, parse
from monitor.beacon.window import Stats, Window
from monitor.state import State

__all__ = ["TIMED_PATH", "BeaconPolicy", "Beacons", "MemberView"]

# What the script times on each member, relative to the server's URL: small,
# served by every Jitsi Meet web server, cached nowhere (a query is added).
TIMED_PATH: Final = "favicon.ico"


@dataclass(frozen=True, slots=True)
class BeaconPolicy:
    """The ``beacon`` block, resolved."""

    origins: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()  # the region names kept; any other is "default"
    window: float = 3600.0
    min_samples: int = 30
    min_prefixes: int = 5
    period: float = 1800.0

    @property
    def cap(self) -> int:
        """Samples one prefix may weigh at most: no prefix alone fills ``min_samples``
        unless ``min_prefixes`` is 1."""
        return max(1, math.ceil(self.min_samples / self.min_prefixes))


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member as the users see it, beside the monitor's own round trip."""

    server: str
    monitor: float | None  # the monitor's smoothed round trip, seconds
    users: Stats
    counts: bool  # enough samples from enough prefixes: a users' pool scores by it


class Beacons:
    """Received beacons: validated, limited, windowed; scores for ``nearest: users``."""

    def __init__(self, state: State, policy: BeaconPolicy, blinder: Blinder | None = None) -> None:
        self.state = state
        self.policy = policy
        self._blind = blinder or Blinder()
        self.by_address = Buckets(ADDRESS_LIMIT)
        self.by_prefix = Buckets(PREFIX_LIMIT)
        self.window = Window(policy.window, policy.cap)
        self.rejected: Counter[str] = Counter()
        self.accepted = 0

    def configure(self, policy: BeaconPolicy) -> None:
        """A reload's block: the window keeps its samples, re-weighed by the new cap."""
        self.policy = policy
        self.window.seconds = policy.window
        self.window.cap = policy.cap
        self.window.invalidate()

    # -- the script's side ---------------------------------------------------

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and origin in self.policy.origins

    def members(self, pool: str) -> dict[str, str] | None:
        """The pool's members with the URL the script times (None: no such pool)."""
        settings = self.state.pools.get(pool)
        if settings is None:
            return None
        targets = self.state.targets
        return {
            name: urljoin(targets[name].url, TIMED_PATH)
            for name in settings.servers[:MAX_MEMBERS]
            if name in targets
        }

    def receive(self, body: bytes, origin: str | None, address: str, now: float) -> Beacon:
        """Check and keep one beacon; ``Rejected`` (counted by reason) when refused."""
        try:
            return self._receive(body, origin, address, now)
        except Rejected as exc:
            self.rejected[exc.reason] += 1
            raise

    def _receive(self, body: bytes, origin: str | None, address: str, now: float) -> Beacon:
        if not self.allowed(origin):
            raise Rejected("origin")
        prefix = client_prefix(address)
        if prefix is None:
            raise Rejected("rate_limited")  # no address, no limit to apply: refused
        prefix_key = self._blind(prefix)
        # Both buckets are charged: a prefix's flood also spends its addresses'.
        by_address = self.by_address.take(self._blind(address), now)
        by_prefix = self.by_prefix.take(prefix_key, now)
        if not (by_address and by_prefix):
            raise Rejected("rate_limited")
        beacon = parse(body, self.members, self.policy.regions)
        for server, seconds in beacon.rtt:
            self.window.add(server, prefix_key, beacon.region, seconds, now)
        self.accepted += 1
        return beacon

    # -- the selector's and the pages' side ----------------------------------

    def score(self, server: str, now: float | None = None) -> float | None:
        """The users' score of ``server`` when it counts, else None."""
        stats = self.window.stats(server, time.time() if now is None else now)
        return stats.score if self._counts(stats) else None

    def _counts(self, stats: Stats) -> bool:
        policy = self.policy
        return stats.prefixes >= policy.min_prefixes and stats.samples >= policy.min_samples

    def view(self, server: str, now: float | None = None) -> MemberView:
        stats = self.window.stats(server, time.time() if now is None else now)
        return MemberView(server, self.state.score(server), stats, self._counts(stats))

    def regions(self, server: str, now: float) -> list[tuple[str, Stats]]:
        """Each region's stats of ``server`` in the window."""
        return [(r, self.window.stats(server, now, r)) for r in self.window.regions(server, now)]

    def forget_removed(self) -> None:
        self.window.forget(self.state.targets)
