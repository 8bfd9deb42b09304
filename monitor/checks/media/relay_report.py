"""What the ``turn_relay`` check found: per TURN service and transport, whether a
datagram went from one relayed address to another and back, and how long it took.

A result of its own (``RelayReport``, kept under ``report.results``), next
to the media family's ``MediaReport``: the relay test is a second probe of
each TURN service that allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.checks.media.result import MediaProbe

__all__ = ["RelayProbe", "RelayReport"]


@dataclass(frozen=True, slots=True)
class RelayProbe(MediaProbe):
    """Two allocations on one TURN service relaying a datagram to each other and back.

    A ``MediaProbe``'s fields, of the relay test: ``seconds`` is the round trip
    relay to relay and back (None: no answer, or not tried)."""


@dataclass(frozen=True, slots=True)
class RelayReport:
    """The relay probes of one media run (when it ran, each TURN service's probe)."""

    family: ClassVar[str] = "media.relay"

    at: float  # Unix time, as the media run's
    probes: tuple[RelayProbe, ...] = ()
