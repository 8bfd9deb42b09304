"""Shorter garbage-collector pauses in a large fleet: survivors of a full pass are frozen.

A full collection walks every tracked object that is not frozen. In a large
fleet that is mostly the latest reports (some 60 objects a server: 900,000
at 15,000 servers), so each full pass stops the loop for 0.3-0.7 s, and
every ladder due meanwhile starts that late. Reports are acyclic: when a
server's next report replaces one, reference counting frees it, frozen or
not. So after each full pass the survivors are frozen (``gc.freeze``): the
next full pass walks only what was made since. Python's rule for when a
full pass is due (a quarter more long-lived objects than at the last one)
then counts only the unfrozen ones, so full passes come more often, each
short; and each freeze also freezes what was young then (ladders in
flight), which is why the thaw below matters.

What freezing gives up is cyclic garbage among the frozen objects: a
structure that was alive at a freeze (a ladder in flight: its task and
frames) and becomes unreachable later is not collected while frozen. So
every ``THAW_EVERY`` seconds the frozen objects are handed back
(``gc.unfreeze``), whether or not a full pass came meanwhile (an
interpreter whose collector reports no full passes still thaws): the next
full pass walks everything once, frees what such cycles left, and the
freezing starts again. Stopping hands everything back too.

The freeze itself happens on the event loop (``settle``, called as ladders
start), not inside the collector's callback.
"""

from __future__ import annotations

import gc
import time
from typing import Final

__all__ = ["THAW_EVERY", "QuietGc"]

THAW_EVERY: Final = 600.0


class QuietGc:
    """Freezes the survivors of each full collection; thaws them now and then."""

    def __init__(self, thaw_every: float = THAW_EVERY) -> None:
        self._thaw_every = thaw_every
        self._due = False
        self._thawed = time.monotonic()
        self.freezes = 0
        self.thaws = 0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self._due = True

    def settle(self) -> None:
        """Thaw when it is time; else, after a full collection, freeze its survivors."""
        now = time.monotonic()
        if now - self._thawed >= self._thaw_every:
            self._thawed = now
            self._due = False
            self.thaws += 1
            gc.unfreeze()  # the next full pass sees everything once
            return
        if not self._due:
            return
        self._due = False
        self.freezes += 1
        gc.freeze()
