"""The signalling family's rows of the ladder table: XMPP login, focus, MUC join."""

from __future__ import annotations

from monitor.ladder import Check, CheckSpec

__all__ = ["ROWS"]

ROWS: tuple[CheckSpec, ...] = (
    CheckSpec(
        Check.SIGNALLING,
        "signalling",
        "signalling",
        verdict=True,
        require="signalling",
        group="signalling",
    ),
    CheckSpec(
        Check.FOCUS, "signalling", "focus", verdict=True, require="focus", group="signalling"
    ),
    CheckSpec(Check.MUC, "signalling", "MUC", verdict=True, require="muc", group="signalling"),
)
