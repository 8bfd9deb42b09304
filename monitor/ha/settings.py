"""The ``ha:`` block as plain values, and every timing derived from the lease.

One number, the lease, sets them all, so that their order always holds:

- the heartbeat (a fifth of the lease) confirms the leader's lock;
- the leader's own deadline (half the lease): a leader that has not confirmed
  its lock for that long stops acting, on its own clock, without asking anyone;
- the server's ``idle_session_timeout`` (the lease): a session that sent nothing
  for that long is ended by PostgreSQL, which frees its lock. A stopped process's
  kernel still answers TCP keepalives, so only this frees a paused leader's lock;
- ``tcp_user_timeout`` and keepalives (a third of the lease): a connection whose
  peer has gone (a partition) errors out instead of hanging.

So a leader steps down at least half a lease before anyone else can take over.
No decision compares wall clocks across machines: the deadline is this process's
monotonic clock, the lease is enforced by the server's own timers.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from monitor.moodle.database import Dsn, Password

__all__ = ["HaSettings", "default_instance"]


def default_instance() -> str:
    """The host name and the pid: unique among instances that run at the same time."""
    host = socket.gethostname().split(".", 1)[0] or "host"
    return f"{host[:48]}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class HaSettings:
    """Where the shared state is, and this instance's name in it."""

    dsn: Dsn
    password: Password | None = field(repr=False)
    lease: float = 15.0
    instance: str = field(default_factory=default_instance)
    shards: int = 1

    @property
    def heartbeat(self) -> float:
        """How often the lock is confirmed (and a follower looks for the leader's state)."""
        return self.lease / 5

    @property
    def deadline(self) -> float:
        """How long a leader acts after its last confirmed heartbeat began."""
        return self.lease / 2

    @property
    def idle_session_ms(self) -> int:
        """The server ends the lock's session after this much silence (frees the lock)."""
        return int(self.lease * 1000)

    @property
    def tcp_user_ms(self) -> int:
        """Unacknowledged data for this long breaks the connection (a partition)."""
        return int(self.lease * 1000 / 3)

    @property
    def connect_timeout(self) -> int:
        """libpq's connect_timeout (whole seconds, at least 2, as libpq requires)."""
        return max(2, round(self.lease / 3))
