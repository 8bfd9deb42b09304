"""The jwt family's rows of the ladder table: the token matrix's checks."""

from __future__ import annotations

from monitor.ladder import Check, CheckSpec

__all__ = ["ROWS"]

ROWS: tuple[CheckSpec, ...] = (
    # The signalling family's login is the valid-token case, so it comes with it.
    CheckSpec(Check.JWT_VALID, "jwt", "JWT valid", verdict=True, require="jwt", group="signalling"),
    CheckSpec(Check.JWT_ENFORCED, "jwt", "JWT enforced", require="jwt", group="jwt"),
    CheckSpec(Check.MODERATION, "jwt", "moderation", require="moderation", group="jwt"),
)
