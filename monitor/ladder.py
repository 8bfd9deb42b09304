"""What a ladder is: every check, phase, token case and pool-change reason, declared once.

A ladder is the sequence of checks the monitor runs against one server, by
family: ``web`` (page, config.js, external_api.js, embed limit), then
``signalling`` (XMPP login, focus, MUC join), then ``jwt`` (the token
matrix), then ``media`` (STUN and TURN, from the services the login
found). Each check is one row (``CheckSpec``) declared by its family
(``monitor.checks.<family>.rows``); ``Ladder`` derives from the rows what
lists checks: which decide the verdict, which every ladder runs, the words
of a pool's ``require``, the groups of ``/probe``'s ``checks=``.
``monitor.checks.LADDER`` is the table of the shipped families.

This module imports nothing from the monitor, so that anything (the result
types, the dashboard generator, the benchmarks) can read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol, TypeVar

__all__ = [
    "DEFAULT_REQUIRE",
    "FAILOVER_REASONS",
    "HTTP_PHASES",
    "XMPP_PHASES",
    "Check",
    "CheckSpec",
    "Ladder",
    "PoolChange",
    "Verdict",
]


class Check(str):
    """The name of a check (a ``check`` label value); its family's row says the rest.

    An open set: a family declares its checks with ``Check("name")`` next to
    their rows (``monitor.checks.<family>.rows``). Names are interned, so that
    ``Check("web") is Check.WEB`` and checks compare with ``is`` as enum
    members did. The shipped checks are also named here, as attributes, for
    the code and the tests that refer to them.
    """

    __slots__ = ()
    _interned: ClassVar[dict[str, Check]] = {}

    WEB: ClassVar[Check]
    CONFIGJS: ClassVar[Check]
    EXTERNAL_API: ClassVar[Check]
    EMBED: ClassVar[Check]
    SIGNALLING: ClassVar[Check]
    FOCUS: ClassVar[Check]
    MUC: ClassVar[Check]
    JWT_VALID: ClassVar[Check]
    JWT_ENFORCED: ClassVar[Check]
    MODERATION: ClassVar[Check]
    STUN: ClassVar[Check]
    TURN: ClassVar[Check]

    def __new__(cls, name: str) -> Check:
        known = cls._interned.get(name)
        if known is None:
            if not name.isidentifier() or name != name.lower():
                raise ValueError(f"not a check name: {name!r}")
            known = cls._interned[name] = super().__new__(cls, name)
        return known

    @property
    def value(self) -> str:
        """The name as a plain string (what enum members called ``value``)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Check({self.value!r})"

    def __reduce__(self) -> tuple[type[Check], tuple[str]]:
        return (Check, (self.value,))


Check.WEB = Check("web")
Check.CONFIGJS = Check("configjs")
Check.EXTERNAL_API = Check("external_api")
Check.EMBED = Check("embed")
Check.SIGNALLING = Check("signalling")
Check.FOCUS = Check("focus")
Check.MUC = Check("muc")
Check.JWT_VALID = Check("jwt_valid")
Check.JWT_ENFORCED = Check("jwt_enforced")
Check.MODERATION = Check("moderation")
Check.STUN = Check("stun")
Check.TURN = Check("turn")


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One row of the ladder table (declared by the check's family)."""

    check: Check
    # The family that runs it (a ``Family.name`` in ``monitor.checks.FAMILIES``).
    stage: str
    # A title for tables and dashboard panels.
    title: str
    # Its failure makes the server "down" (when it was run).
    verdict: bool = False
    # Every ladder runs it, whatever the server's settings.
    always: bool = False
    # The word of a pool's ``require`` list that asks for it (None: no word).
    require: str | None = None
    # What ``/probe``'s ``checks=`` names to keep its family.
    group: str = "web"


class Ladder:
    """The table of checks, in ladder order, with the sets derived from it.

    Built once from the families' rows (``monitor.checks.LADDER``); a test
    builds its own from its own families.
    """

    def __init__(self, rows: Iterable[CheckSpec]) -> None:
        self._rows: tuple[CheckSpec, ...] = tuple(rows)
        self._by_check: dict[Check, CheckSpec] = {}
        for row in self._rows:
            if row.check in self._by_check:
                raise ValueError(f"check {row.check.value!r} is declared twice")
            self._by_check[row.check] = row
        rows_ = self._rows
        self.order: dict[Check, int] = {r.check: i for i, r in enumerate(rows_)}
        self.verdict: frozenset[Check] = frozenset(r.check for r in rows_ if r.verdict)
        self.always: frozenset[Check] = frozenset(r.check for r in rows_ if r.always)
        words: dict[str, tuple[Check, ...]] = {}
        for r in rows_:
            if r.require is not None:
                words[r.require] = (*words.get(r.require, ()), r.check)
        self.requirements: dict[str, tuple[Check, ...]] = words
        self.groups: tuple[str, ...] = tuple(dict.fromkeys(r.group for r in rows_))

    def __iter__(self) -> Iterator[CheckSpec]:
        return iter(self._rows)

    def spec(self, check: Check) -> CheckSpec:
        return self._by_check[check]

    def checks(self, stage: str | None = None) -> tuple[Check, ...]:
        """The checks in ladder order (of one family, when named)."""
        return tuple(r.check for r in self._rows if stage is None or r.stage == stage)

    def up(self, results: Iterable[Verdict]) -> bool:
        """Healthy when every check that decides the verdict and was run passed,
        and every check each ladder runs was run."""
        verdict = [r for r in results if r.check in self.verdict]
        return all(r.success for r in verdict) and {r.check for r in verdict} >= self.always

    def first_failure(self, results: Iterable[V]) -> V | None:
        """The first failing check that decides the verdict, if any."""
        return next((r for r in results if r.check in self.verdict and not r.success), None)


class Verdict(Protocol):
    """What the table judges of a check's result (``monitor.model.CheckResult``)."""

    @property
    def check(self) -> Check: ...

    @property
    def success(self) -> bool: ...


V = TypeVar("V", bound=Verdict)


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
