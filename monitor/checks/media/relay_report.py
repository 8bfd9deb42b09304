"""What the ``turn_relay`` check found: per TURN service and transport, whether a
datagram went from one relayed address to another and back, and how long it took.

A result of its own (``RelayReport``, kept under ``report.results``), next
to the media family's ``MediaReport``: the relay test is a second probe of
each TURN service that allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.checks.media.result import MediaService
from monitor.model import Reason

__all__ = ["RelayProbe", "RelayReport"]


@dataclass(frozen=True, slots=True)
class RelayProbe:
    """Two allocations on one TURN service relaying a datagram to each other and back."""

    service: MediaService
    reason: Reason
    # The round trip relay to relay and back (None: no answer, or not tried).
    seconds: float | None = None
    detail: str = ""

    @property
    def success(self) -> bool:
        return self.reason is Reason.OK


@dataclass(frozen=True, slots=True)
class RelayReport:
    """The relay probes of one media run (when it ran, each TURN service's probe)."""

    family: ClassVar[str] = "media.relay"

    at: float  # Unix time, as the media run's
    probes: tuple[RelayProbe, ...] = ()
