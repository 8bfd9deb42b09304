"""The cases of the token matrix, in order (the jwt family's own vocabulary)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JwtCase"]


class JwtCase(StrEnum):
    """The cases of the token matrix (the ``case`` label of the jwt family's metrics), in order."""

    VALID = "valid"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NO_TOKEN = "no_token"
    OTHER_ROOM = "other_room"
    MODERATOR_FALSE = "moderator_false"
    MODERATOR_TRUE = "moderator_true"
