"""What the jwt family found besides its checks: the token matrix, case by case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.checks.jwt.cases import JwtCase

__all__ = ["JwtResult"]


@dataclass(frozen=True, slots=True)
class JwtResult:
    """The token matrix of one report (a report's ``result(JwtResult)``)."""

    family: ClassVar[str] = "jwt"

    # (case, passed). The refusal cases and the moderator pair may be carried
    # from an earlier round (``matrix_at``).
    cases: tuple[tuple[JwtCase, bool], ...] = ()
    # When the refusal cases and the moderator pair shown here last ran (Unix
    # time; None: they have not run for this server).
    matrix_at: float | None = None

    def ages(self, now: float) -> tuple[tuple[JwtCase, float], ...]:
        """How old each case's verdict is at ``now``: this round's, or the carried matrix's."""
        at = self.matrix_at
        return tuple(
            (case, 0.0 if case is JwtCase.VALID or at is None else max(0.0, now - at))
            for case, _ in self.cases
        )
