"""Pool decisions under HA: the leader's go on as ever, a follower's are dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from monitor.decisions import Decisions
from monitor.ha.role import HaRole
from monitor.selector import Decision
from monitor.state import State

__all__ = ["HaDecisions"]


class HaDecisions(Decisions):
    """``Decisions`` that act only while ``role`` acts; otherwise the pools keep
    showing the leader's choice (its judgement, not this instance's, is what counts)."""

    def __init__(
        self,
        role: HaRole,
        state: State,
        *,
        notify: Callable[[Decision], None] | None = None,
        save: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(state, notify=notify, save=save)
        self.role = role

    def take(self, decisions: Iterable[Decision]) -> None:
        if self.role.acting():
            super().take(decisions)
        else:
            self.role.mirror_pools()
