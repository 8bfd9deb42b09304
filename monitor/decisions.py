"""The one path of a pool decision: kept, logged, handed on, saved.

Whoever makes pool decisions (the scheduler after a ladder, a config reload
that changes the pools, ``check`` after its round) gives them to
``Decisions.take``; nothing else appends to ``State.decisions``, logs a
change of choice or notifies about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from monitor.selector import Decision
from monitor.state import State

__all__ = ["Decisions", "log_decision"]

log = logging.getLogger("monitor.pools")


def log_decision(decision: Decision) -> None:
    """A change of a pool's choice, for the log."""
    if decision.chosen is None:
        log.warning("pool %s has no eligible server (%s)", decision.pool, decision.detail)
    else:
        log.warning(
            "pool %s: %s -> %s (%s: %s)",
            decision.pool,
            decision.previous or "none",
            decision.chosen,
            decision.reason.value,
            decision.detail,
        )


class Decisions:
    """Takes every pool decision: into ``state.decisions``, the log, ``notify``, then ``save``."""

    def __init__(
        self,
        state: State,
        *,
        notify: Callable[[Decision], None] | None = None,
        save: Callable[[], None] | None = None,
        logged: bool = True,
    ) -> None:
        self.state = state
        self.notify = notify
        self.save = save
        # ``check`` prints each pool's choice itself: its log stays quiet.
        self.logged = logged

    def take(self, decisions: Iterable[Decision]) -> None:
        """Record, log and hand on each decision, in order; save once after them."""
        made = False
        for decision in decisions:
            made = True
            self.state.decisions.append(decision)
            if self.logged:
                log_decision(decision)
            if self.notify is not None:
                self.notify(decision)
        if made and self.save is not None:
            self.save()
