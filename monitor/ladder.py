"""What a ladder is: every check, phase, token case and pool-change reason, declared once.

A ladder is the sequence of checks the monitor runs against one server, in
stages: ``web`` (page, config.js, external_api.js, embed limit), then
``signalling`` (XMPP login, focus, MUC join), then ``jwt`` (the token
matrix), then ``media`` (STUN and TURN, from the services the login
found). Each check is one row of the table below; everything that lists
checks is derived from it: which checks decide the verdict, which every
ladder runs, the words of a pool's ``require``, the groups of ``/probe``'s
``checks=``, the CLI's columns, the dashboards' panels.

The stage functions that run a stage live in ``monitor.runner`` (``STAGES``,
in ladder order). A new check is one row here plus its probe; a new stage is
its rows plus one stage function (``monitor.runner.register_stage``).

This module imports nothing from the monitor, so that anything (the result
types, the dashboard generator, the benchmarks) can read the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_REQUIRE",
    "FAILOVER_REASONS",
    "HTTP_PHASES",
    "LADDER",
    "XMPP_PHASES",
    "Check",
    "CheckSpec",
    "JwtCase",
    "Ladder",
    "PoolChange",
]


class Check(StrEnum):
    """The name of a check (a ``check`` label value); its row in ``LADDER`` says the rest."""

    WEB = "web"
    CONFIGJS = "configjs"
    EXTERNAL_API = "external_api"
    EMBED = "embed"
    SIGNALLING = "signalling"
    FOCUS = "focus"
    MUC = "muc"
    JWT_VALID = "jwt_valid"
    JWT_ENFORCED = "jwt_enforced"
    MODERATION = "moderation"
    STUN = "stun"
    TURN = "turn"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One row of the ladder table."""

    check: Check
    # The stage that runs it (a name in monitor.runner.STAGES).
    stage: str
    # A title for tables and dashboard panels.
    title: str
    # Its failure makes the server "down" (when it was run).
    verdict: bool = False
    # Every ladder runs it, whatever the server's settings.
    always: bool = False
    # The word of a pool's ``require`` list that asks for it (None: no word).
    require: str | None = None
    # What ``/probe``'s ``checks=`` names to keep its stage.
    group: str = "web"


class Ladder:
    """The table of checks, in ladder order, with the sets derived from it.

    Rows may be added at run time (a new stage registers its checks); the
    derived sets follow.
    """

    def __init__(self, rows: tuple[CheckSpec, ...]) -> None:
        self._rows: list[CheckSpec] = []
        self._by_check: dict[Check, CheckSpec] = {}
        for row in rows:
            self.add(row)

    def add(self, row: CheckSpec, *, after: Check | None = None) -> None:
        """Add a row (at the end, or right after the row of ``after``)."""
        if row.check in self._by_check:
            raise ValueError(f"check {row.check.value!r} is declared twice")
        index = len(self._rows) if after is None else self._rows.index(self.spec(after)) + 1
        self._rows.insert(index, row)
        self._by_check[row.check] = row
        self._derive()

    def remove(self, check: Check) -> None:
        """Take a row out again (a test's toy stage)."""
        self._rows.remove(self._by_check.pop(check))
        self._derive()

    def _derive(self) -> None:
        rows = self._rows
        self.order: dict[Check, int] = {r.check: i for i, r in enumerate(rows)}
        self.verdict: frozenset[Check] = frozenset(r.check for r in rows if r.verdict)
        self.always: frozenset[Check] = frozenset(r.check for r in rows if r.always)
        words: dict[str, tuple[Check, ...]] = {}
        for r in rows:
            if r.require is not None:
                words[r.require] = (*words.get(r.require, ()), r.check)
        self.requirements: dict[str, tuple[Check, ...]] = words
        self.groups: tuple[str, ...] = tuple(dict.fromkeys(r.group for r in rows))

    def __iter__(self) -> Iterator[CheckSpec]:
        return iter(tuple(self._rows))

    def spec(self, check: Check) -> CheckSpec:
        return self._by_check[check]

    def checks(self, stage: str | None = None) -> tuple[Check, ...]:
        """The checks in ladder order (of one stage, when named)."""
        return tuple(r.check for r in self._rows if stage is None or r.stage == stage)


LADDER = Ladder(
    (
        CheckSpec(Check.WEB, "web", "web", verdict=True, always=True, require="web"),
        CheckSpec(Check.CONFIGJS, "web", "config.js", verdict=True, always=True, require="web"),
        CheckSpec(
            Check.EXTERNAL_API,
            "web",
            "external_api.js",
            verdict=True,
            always=True,
            require="web",
        ),
        # What a server is fit for, not whether it works: reported on its own
        # (pools that serve embedded meetings ask for it with `embedding`).
        CheckSpec(Check.EMBED, "web", "embed"),
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
        # The signalling stage's login is the valid-token case, so it comes with it.
        CheckSpec(
            Check.JWT_VALID, "jwt", "JWT valid", verdict=True, require="jwt", group="signalling"
        ),
        CheckSpec(Check.JWT_ENFORCED, "jwt", "JWT enforced", require="jwt", group="jwt"),
        CheckSpec(Check.MODERATION, "jwt", "moderation", require="moderation", group="jwt"),
        # The media path (after the XMPP login, which discovers its services):
        # what participants' sound and picture rely on behind NAT and firewalls.
        # Not part of the verdict; pools that need it ask with `media`.
        CheckSpec(Check.STUN, "media", "STUN", require="media", group="media"),
        CheckSpec(Check.TURN, "media", "TURN", require="media", group="media"),
    )
)

# The words a pool requires of its members when its config names none.
DEFAULT_REQUIRE: tuple[str, ...] = ("web", "signalling")

# Phases of the page GET (``jitsi_http_duration_seconds{phase}``), in order.
HTTP_PHASES: tuple[str, ...] = ("resolve", "connect", "tls", "processing", "transfer")
# Steps of the signalling ladder (``jitsi_xmpp_duration_seconds{phase}``), in order.
XMPP_PHASES: tuple[str, ...] = (
    "upgrade",
    "open",
    "auth",
    "bind",
    "ping",
    "focus",
    "join",
    "settle",
    "leave",
)


class JwtCase(StrEnum):
    """The cases of the token matrix (``jitsi_jwt_case_success{case}``), in order."""

    VALID = "valid"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NO_TOKEN = "no_token"
    OTHER_ROOM = "other_room"
    MODERATOR_FALSE = "moderator_false"
    MODERATOR_TRUE = "moderator_true"


class PoolChange(StrEnum):
    """Why a pool's choice changed (an event's ``reason``)."""

    # The pool's first choice: it had none before.
    INITIAL = "initial"
    # The chosen server stopped being eligible; another took its place.
    INELIGIBLE = "ineligible"
    # Another member was better (an earlier tier, or nearer) for long enough.
    BETTER = "better"
    # The pool had no eligible member and its last choice came back.
    RECOVERED = "recovered"
    # No member is eligible any more: the pool has no choice.
    NONE_ELIGIBLE = "none_eligible"


# The changes counted by ``jitsi_pool_failovers_total{reason}``: moving away
# from a choice (an initial choice and a recovery are not failovers).
FAILOVER_REASONS: tuple[PoolChange, ...] = (
    PoolChange.INELIGIBLE,
    PoolChange.BETTER,
    PoolChange.NONE_ELIGIBLE,
)
