"""What a beacon may be; anything else is refused with one reason of a closed set.

The body is JSON (sent as ``text/plain`` so that no preflight is needed)::

    {"pool": "moodle", "region": "eu", "rtt": {"meet-a": 41.5, "meet-b": 88.0}}

``rtt`` maps members of the pool to the median of the script's timings, in
milliseconds; ``region`` is optional (the tag's ``data-region``). The sender
chooses it, so only the regions of ``beacon.regions`` are kept as given:
any other (of the right shape) is kept as ``default``, else each fresh name
would be a series of its own on /metrics and a pass over the window at
every scrape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Final

from monitor.domain import ALL_REGIONS, REGION

__all__ = [
    "MAX_BODY",
    "MAX_MEMBERS",
    "MAX_RTT_MS",
    "REASONS",
    "Beacon",
    "Rejected",
    "parse",
]

# Bytes of a body at most: 16 members with long names fit easily.
MAX_BODY: Final = 2048
# Members timed per beacon at most (the script times no more).
MAX_MEMBERS: Final = 16
# A round trip over a minute is no measurement of nearness.
MAX_RTT_MS: Final = 60_000.0
NO_REGION: Final = "default"

# Why a beacon was refused (the label of jitsi_beacons_rejected_total).
REASONS: Final[tuple[str, ...]] = (
    "origin",  # no Origin header, or one not in beacon.origins
    "rate_limited",  # the client's address or prefix sent too many
    "too_large",  # a body over MAX_BODY bytes
    "malformed",  # not a JSON object of the documented shape
    "unknown_pool",  # no pool of that name
    "unknown_server",  # a server that is not a member of the pool
    "bad_number",  # not a finite number of milliseconds in (0, MAX_RTT_MS]
    "bad_region",  # a region name not of the documented shape
)


class Rejected(Exception):
    """A beacon that is refused; ``reason`` is one of REASONS."""

    def __init__(self, reason: str) -> None:
        assert reason in REASONS, reason
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Beacon:
    """A checked beacon: round trips in seconds, by member."""

    pool: str
    region: str
    rtt: tuple[tuple[str, float], ...]


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def parse(
    body: bytes,
    members: Callable[[str], Mapping[str, object] | None],
    regions: Collection[str] = (),
) -> Beacon:
    """Check a body; ``members(pool)`` gives the pool's members (None: no such pool),
    ``regions`` the region names kept as given (any other is ``NO_REGION``)."""
    if len(body) > MAX_BODY:
        raise Rejected("too_large")
    try:
        # NaN and Infinity are no JSON, though Python reads them by default.
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejected("malformed") from None
    if not isinstance(data, dict) or not data.keys() <= {"pool", "region", "rtt"}:
        raise Rejected("malformed")
    pool, region, rtt = data.get("pool"), data.get("region", ""), data.get("rtt")
    if not isinstance(pool, str) or not isinstance(rtt, dict) or not isinstance(region, str):
        raise Rejected("malformed")
    if not rtt or len(rtt) > MAX_MEMBERS:
        raise Rejected("malformed")
    known = members(pool)
    if known is None:
        raise Rejected("unknown_pool")
    if region and (region == ALL_REGIONS or not REGION.fullmatch(region)):
        raise Rejected("bad_region")
    out = []
    for server, value in rtt.items():
        if server not in known:
            raise Rejected("unknown_server")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Rejected("bad_number")
        try:
            ms = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise Rejected("bad_number") from None
        if not (math.isfinite(ms) and 0 < ms <= MAX_RTT_MS):
            raise Rejected("bad_number")
        out.append((server, ms / 1000))
    return Beacon(pool, region if region in regions else NO_REGION, tuple(out))
