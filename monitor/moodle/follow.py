"""The site pool's current choice is what Moodle uses: serve follows ``mod_jitsi/server``.

At start and after every read, the pool's choice becomes the server of the
row Moodle's setting names. When that differs from the pool's own choice and
no switch of the monitor's is under way, a person (or another tool) changed it:
the monitor follows, logs it as a change from outside, and holds off ``better``
switches for the pool's ``hold_down`` — it never fights a person. A setting that
names no watched server is left alone: the pool then chooses by itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from monitor.selector import PoolSettings, PoolState

__all__ = ["follow"]

log = logging.getLogger("monitor.moodle")


def follow(
    pools: Mapping[str, PoolSettings],
    states: dict[str, PoolState],
    pool: str,
    server: str | None,
    now: float,
    *,
    at_start: bool,
) -> bool:
    """Make ``server`` the pool's choice in ``states`` (serve's ``State.pool_states``);
    True when it changed from outside (logged)."""
    settings = pools.get(pool)
    if server is None or settings is None or server not in settings.servers:
        return False
    current = states.get(pool, PoolState())
    if current.current == server and not current.stale:
        return False
    states[pool] = dataclasses.replace(
        current,
        current=server,
        stale=False,
        challenger=None,
        streak=0,
        changed_at=now,
        hold_until=now + settings.hold_down,
        wait_until=0.0,
    )
    if at_start:
        log.info("pool %s: Moodle uses %s (mod_jitsi/server)", pool, server)
        return False
    log.warning(
        "pool %s: mod_jitsi/server changed from outside: %s -> %s; following it",
        pool,
        current.current or "none",
        server,
    )
    return True
