"""The switch as a sink of the durable outbox: a pool's new choice becomes Moodle's server.

The outbox (monitor/outbox.py) keeps each event of the site's pool until this
sink has taken it, across restarts; ``monitor.notify`` hands them over one at a
time. For each event the sink:

- takes only the newest event of its pool (an older choice is superseded);
- follows the policy: ``when_down`` switches only when the pool left a server
  that is not eligible (reasons ``ineligible``, ``recovered``, ``initial``),
  never for ``better``; ``better`` also for a nearer server (it splits meetings
  in progress); ``never`` has no sink at all;
- does nothing when Moodle already uses the chosen server;
- runs cfg.php (monitor.moodle.switch) and counts the switch done only when
  Moodle and the database read the id back.

What the outbox hears: ``delivered`` (done, unchanged, skipped), ``refused``
for ``forced`` (cfg.php exit 4 or a forced setting: trying again cannot help;
an alert says so), ``failed`` otherwise (tried again with the outbox's backoff).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from monitor.moodle.status import MoodleStatus
from monitor.moodle.switch import SwitchCommand, SwitchOutcome, switch_server
from monitor.outbox import Event, Outbox

__all__ = ["SINK", "SWITCH_REASONS", "MoodleSwitch"]

log = logging.getLogger("monitor.moodle")

SINK = "moodle"
# The pool changes that mean "the server Moodle uses is not eligible": when_down switches then.
SWITCH_REASONS = frozenset({"ineligible", "recovered", "initial"})


class MoodleSwitch:
    """Delivers the site pool's events by switching ``mod_jitsi/server``."""

    def __init__(
        self,
        command: SwitchCommand,
        status: MoodleStatus,
        outbox: Outbox,
        *,
        row_of: Callable[[str | None], int | None],
        read_back: Callable[[], Awaitable[int | None]],
    ) -> None:
        self.command = command
        self.status = status
        self.outbox = outbox
        self.row_of = row_of
        self.read_back = read_back
        # The row id a switch is setting now: a read meanwhile is not a change from outside.
        self.setting: int | None = None
        # The row Moodle kept when a switch was not done (forced, failed): while Moodle
        # still names it, that is the failed switch, not a change from outside.
        self.kept: int | None = None

    def busy(self) -> bool:
        """Whether a switch is under way, waiting in the outbox, or was not applied and
        Moodle still names the row it kept (serve does not follow then)."""
        if self.kept is not None:
            if self.status.active_id == self.kept:
                return True
            self.kept = None  # Moodle names another row now: someone changed it
        queue = self.outbox.queues.get(SINK)
        pending = queue is not None and any(
            (event := self.outbox.events.get(i)) is not None and event.pool == self.status.pool
            for i in queue.pending
        )
        return self.setting is not None or pending

    async def deliver(self, event: Event) -> str:
        status = self.status
        if event.pool != status.pool:
            return "delivered"  # another pool's change: nothing for Moodle
        if self.outbox.newer_of_pool(SINK, event) is not None:
            return "superseded"
        chosen = event.body.get("chosen")
        reason = str(event.body.get("reason") or "")
        row = self.row_of(chosen if isinstance(chosen, str) else None)
        if row is None:
            status.switches["skipped"] += 1
            return "delivered"  # no eligible server (or it left the site): nothing to set
        if status.policy == "when_down" and reason not in SWITCH_REASONS:
            status.switches["skipped"] += 1
            log.info(
                "moodle: not switching to %s (%s): switch is when_down, and Moodle's server "
                "is eligible",
                chosen,
                reason,
            )
            return "delivered"
        if status.active_id == row:
            status.switches["unchanged"] += 1
            return "delivered"
        self.setting = row
        try:
            outcome = await switch_server(self.command, row, self.read_back)
        finally:
            self.setting = None
        return self._record(outcome, str(chosen), reason)

    def _record(self, outcome: SwitchOutcome, server: str, reason: str) -> str:
        status = self.status
        status.switches[outcome.result] += 1
        status.last_switch = {
            "server": server,
            "id": outcome.server_id,
            "result": outcome.result,
            "detail": outcome.detail,
            "reason": reason,
            "at": time.time(),
        }
        if outcome.done:
            self.kept = None
            previous = status.active_id
            status.active_id, status.active_server = outcome.server_id, server
            log.warning(
                "moodle: mod_jitsi/server switched from %s to %d (%s): %s",
                previous,
                outcome.server_id,
                server,
                outcome.detail,
            )
            return "delivered"
        self.kept = status.active_id
        log.error(
            "moodle: switching mod_jitsi/server to %d (%s) %s: %s",
            outcome.server_id,
            server,
            outcome.result,
            outcome.detail,
        )
        return "refused" if outcome.result == "forced" else "failed"
