"""Users' round trips to a pool's members, measured by a script in their browsers.

``/beacon.js`` (``script``) runs on an LMS page, times a few small requests
to each member of its pool and posts the medians to ``/beacon``. Here they
are checked (``validate``), rate-limited per address and per network prefix
(``limits``, ``prefix``), and kept for a sliding window per member and
region (``window``); ``Beacons`` ties them together, and a pool with
``nearest: users`` scores its members by the users' median once enough
beacons from enough prefixes are in (``Beacons.score``).
"""

from monitor.beacon.beacons import BeaconPolicy, Beacons, MemberView
from monitor.beacon.validate import REASONS, Beacon, Rejected

__all__ = ["REASONS", "Beacon", "BeaconPolicy", "Beacons", "MemberView", "Rejected"]
