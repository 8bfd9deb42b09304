"""The media family's rows of the ladder table: STUN and TURN.

The media path (after the XMPP login, which discovers its services): what
participants' sound and picture rely on behind NAT and firewalls. Not part
of the verdict; pools that need it ask with ``media``.
"""

from __future__ import annotations

from monitor.ladder import Check, CheckSpec

__all__ = ["ROWS"]

ROWS: tuple[CheckSpec, ...] = (
    CheckSpec(Check.STUN, "media", "STUN", require="media", group="media"),
    CheckSpec(Check.TURN, "media", "TURN", require="media", group="media"),
)
