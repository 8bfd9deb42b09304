"""The media family's rows of the ladder table: STUN, TURN and the TURN relay.

The media path (after the XMPP login, which discovers its services): what
participants' sound and picture rely on behind NAT and firewalls. Not part
of the verdict; pools that need it ask with ``media``.
"""

from __future__ import annotations

from monitor.ladder import Check, CheckSpec

__all__ = ["ROWS", "TURN_RELAY"]

# Two allocations on each TURN service relay a datagram to each other and back.
TURN_RELAY = Check("turn_relay")

ROWS: tuple[CheckSpec, ...] = (
    CheckSpec(Check.STUN, "media", "STUN", require="media", group="media"),
    CheckSpec(Check.TURN, "media", "TURN", require="media", group="media"),
    CheckSpec(TURN_RELAY, "media", "TURN relay", require="media", group="media"),
)
