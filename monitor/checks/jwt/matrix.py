"""The token check matrix of a server with JWT authentication.

Modeled on Jitsi's own acceptance tests for tokens: a valid token logs in
and joins; a token with a bad signature and an expired token must be refused
at login, a token for another room at the join; a client without a token
must not get into a room (unless the server's ``jwt.guests`` allows it); a
``moderator: false`` token must not come out as moderator, a
``moderator: true`` one must.

The valid case is the main signalling ladder, every round (it logs in with
a fresh ``moderator: false`` token for its room and, on a matrix round,
watches its role settle). ``probe_matrix`` runs the others, each on a stream
of its own, at the pace the runner sets (``jwt.matrix_interval``), and turns
them into two checks: ``jwt_enforced`` and ``moderation``. A case whose
outcome cannot be told (a timeout, a refusal for another reason) is left out
of the cases rather than counted as failed.

What one matrix costs the server: the bad-signature, expired and token-less
logins and the moderator's ladder run side by side; once the moderator is in
its room (one conference request), a token for another room and the
token-less client try to join that same room, and so does a second
``moderator: false`` participant when the main ladder came out owner (to
tell why).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from monitor import escape
from monitor.checks.jwt.cases import JwtCase
from monitor.checks.signalling.xmpp import XmppResult, XmppSettings, probe_xmpp
from monitor.checks.signalling.xmpp.session import xmpp_domain
from monitor.checks.tokens import mint
from monitor.domain import TokenKey
from monitor.ladder import Check
from monitor.model import CheckResult, ConfigFacts, Reason, skipped

__all__ = ["MatrixResult", "probe_matrix", "valid_check"]

_MODERATOR: Final = frozenset({"owner", "moderator"})
# A token that must be refused lives this long: Jitsi logs a refused join
# with its token, and such a line should not hold a live token for long.
_SHORT_LIFETIME: Final = 60
# Refusals at the join that keep a client without a token out of the room.
_HELD_OUT: Final = frozenset(
    {Reason.JOIN_REFUSED, Reason.LOBBY, Reason.PASSWORD_REQUIRED, Reason.WAIT_FOR_HOST}
)


@dataclass(frozen=True, slots=True)
class MatrixResult:
    """``jwt_enforced`` and ``moderation``, and the cases they were judged from."""

    checks: tuple[CheckResult, ...]
    cases: tuple[tuple[JwtCase, bool], ...]


def _get(result: XmppResult, check: Check) -> CheckResult | None:
    return next((c for c in result.checks if c.check is check), None)


def _first_failure(result: XmppResult) -> CheckResult | None:
    return next((c for c in result.checks if not c.success), None)


def _token_refusal(check: CheckResult | None) -> bool:
    """A join refused over the token (not over a lobby, a password, a full room)."""
    if check is None or check.reason is not Reason.JOIN_REFUSED:
        return False
    return "not-allowed" in check.detail or "mismatch" in check.detail.lower()


def domain_mismatch(key: TokenKey, domain: str, detail: str) -> CheckResult | None:
    """A join refused because the token's ``sub`` is not the XMPP domain, in an admin's words.

    Prosody's token plugins with ``enable_domain_verification = true`` refuse
    such a token at the join with "Room and token mismatched" although its room
    claim is right; mod_jitsi's ``sub`` is the domain typed in Moodle.
    """
    subject = key.subject
    if key.jaas or subject == "*" or subject.casefold() == domain.casefold():
        return None
    if "mismatch" not in detail.lower():
        return None
    who = "Moodle's" if key.style == "mod_jitsi" else "this"
    return CheckResult(
        Check.JWT_VALID,
        Reason.JWT_DOMAIN_MISMATCH,
        f"Prosody refuses {who} tokens at the join (Room and token mismatched): their sub is "
        f"{escape.plain(subject, 100)!r}, the domain typed in Moodle, and the XMPP domain is "
        f"{escape.plain(domain, 100)!r}; with enable_domain_verification they must be the "
        "same: set the server's domain in Moodle to the XMPP domain, or turn "
        "enable_domain_verification off in Prosody",
    )


def valid_check(
    main: XmppResult, join: bool, key: TokenKey | None = None, domain: str = ""
) -> CheckResult:
    """jwt_valid from the main ladder: its token logged in, and the join was not refused over it.

    ``join``: whether the ladder was to join (``signalling.join``); ``key`` and
    ``domain`` (the XMPP domain) tell a refusal over the token's ``sub``.
    """
    login = _get(main, Check.SIGNALLING)
    if login is None:
        return CheckResult(Check.JWT_VALID, Reason.SKIPPED, "not tried")
    if login.reason is Reason.SASL_NOT_ALLOWED:
        return CheckResult(
            Check.JWT_VALID, login.reason, f"a valid token is refused: {login.detail}"
        )
    if not login.success:
        return CheckResult(Check.JWT_VALID, Reason.SKIPPED, f"cannot tell: {login.detail}")
    muc = _get(main, Check.MUC)
    if _token_refusal(muc):
        assert muc is not None
        mismatch = None if key is None else domain_mismatch(key, domain, muc.detail)
        if mismatch is not None:
            return mismatch
        return CheckResult(Check.JWT_VALID, muc.reason, f"a valid token cannot join: {muc.detail}")
    failed = _first_failure(main)
    if failed is not None:
        return CheckResult(
            Check.JWT_VALID,
            Reason.SKIPPED,
            f"the token logs in; the join could not be tried ({failed.check.value}: "
            f"{failed.reason.value})",
        )
    if not join:
        return CheckResult(
            Check.JWT_VALID,
            Reason.OK,
            "a valid token logs in (joining is off for this server, so no join was tried)",
        )
    return CheckResult(Check.JWT_VALID, Reason.OK, "a valid token logs in and joins")


def _bad_signature(token: str) -> str:
    """The same token with its signature changed."""
    head, _, signature = token.rpartition(".")
    flipped = ("A" if signature[:1] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


def _is_moderator(result: XmppResult) -> bool:
    return result.role in _MODERATOR or result.affiliation in _MODERATOR


def _in_focus_room(result: XmppResult) -> bool:
    return result.focus_seen and not result.created_room


async def probe_matrix(
    session: aiohttp.ClientSession,
    facts: ConfigFacts,
    origin: str,
    base: XmppSettings,
    key: TokenKey,
    main: XmppResult,
    deadline: float,
) -> MatrixResult:
    """Run the refusal and moderator cases after the main ladder ``main``."""
    login = _get(main, Check.SIGNALLING)
    if login is None or not login.success:
        return MatrixResult(
            skipped((Check.JWT_ENFORCED, Check.MODERATION), "the valid token's login"), ()
        )
    return await _Matrix(session, facts, origin, base, key, deadline).run(main)


@dataclass
class _Matrix:
    session: aiohttp.ClientSession
    facts: ConfigFacts
    origin: str
    base: XmppSettings
    key: TokenKey
    deadline: float
    cases: dict[JwtCase, bool] = dataclasses.field(default_factory=dict)
    # Tokens the server let in although it must refuse them.
    accepted: list[str] = dataclasses.field(default_factory=list)
    refused_login: list[str] = dataclasses.field(default_factory=list)
    refused_join: list[str] = dataclasses.field(default_factory=list)
    unclear: list[CheckResult] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    # How a client without a token got in, where guests are forbidden.
    optional: str | None = None

    def probe(self, **changes: Any) -> Awaitable[XmppResult]:
        settings = dataclasses.replace(self.base, **{"token_for": None, **changes})
        return probe_xmpp(self.session, self.facts, self.origin, settings, self.deadline)

    async def run(self, main: XmppResult) -> MatrixResult:
        key = self.key
        # Tokens that must be refused at login, tried side by side.
        now = time.time()
        refusals = {
            JwtCase.BAD_SIGNATURE: _bad_signature(mint(key, "*", lifetime=_SHORT_LIFETIME)),
            JwtCase.EXPIRED: mint(key, "*", now=now - 3600, lifetime=60),
        }
        login_only: dict[str, Any] = {"focus": False, "join": False, "settle": 0.0}
        logins = asyncio.gather(
            *(
                self.probe(token=t, login_domain=self.facts.domain, **login_only)
                for t in refusals.values()
            )
        )
        # The moderator: true case joins a room focus creates; while it is in
        # there, the cases that need a room join that same room (so the
        # matrix creates no second conference).
        room = f"healthcheck-{secrets.token_hex(6)}"
        joined = asyncio.Event()
        promoted_task: asyncio.Future[XmppResult] | None = None
        if self.base.join:
            promoted_task = asyncio.ensure_future(
                self.probe(
                    token=None, token_for=_moderator_token(key), room=room, on_joined=joined.set
                )
            )
            await _until_joined(promoted_task, joined)
        in_room = joined.is_set()
        in_room_only: dict[str, Any] = {"focus": False, "settle": 0.0, "room": room}
        # A client without a token logs in where a browser without one does
        # (config.js's guest domain, else the main one) and joins if it can.
        guest = self.probe(
            token=None,
            **(in_room_only if in_room else login_only),
        )
        other = second = None
        if in_room and not _any_room(key):
            other_token = mint(key, f"healthcheck-{secrets.token_hex(6)}", lifetime=_SHORT_LIFETIME)
            other = self.probe(token=other_token, **in_room_only)
            if _is_moderator(main) and _in_focus_room(main):
                # Owner as the room's first participant: a second one tells
                # whether focus makes everyone owner or only the first.
                second = self.probe(
                    token=mint(key, room), focus=False, room=room, settle=key.settle
                )
        login_results, guest_result, other_result, second_result = await asyncio.gather(
            logins, guest, _maybe(other), _maybe(second)
        )
        promoted = await promoted_task if promoted_task is not None else None

        for case, result in zip(refusals, login_results, strict=True):
            self.judge_login(case, result)
        self.judge_guest(guest_result, in_room)
        if other_result is not None:
            self.judge_other_room(other_result)
        enforced = self.enforced(promoted)
        moderation = _moderation(self.base, main, promoted, second_result, self.cases)
        cases = tuple((c, self.cases[c]) for c in JwtCase if c in self.cases)
        return MatrixResult((enforced, moderation), cases)

    def judge_login(self, case: JwtCase, result: XmppResult) -> None:
        signalling = _get(result, Check.SIGNALLING)
        words = case.replace("_", " ")
        if signalling is None:
            return
        if signalling.success:
            self.cases[case] = False
            self.accepted.append(words)
        elif signalling.reason is Reason.SASL_NOT_ALLOWED:
            self.cases[case] = True
            self.refused_login.append(words)
        else:
            self.unclear.append(signalling)

    def judge_guest(self, result: XmppResult, tried_join: bool) -> None:
        signalling = _get(result, Check.SIGNALLING)
        if signalling is None:
            return
        if not signalling.success:
            if signalling.reason is Reason.SASL_NOT_ALLOWED:
                self.cases[JwtCase.NO_TOKEN] = True
                self.refused_login.append("no token")
            else:
                self.unclear.append(signalling)
            return
        domain = xmpp_domain(self.facts, with_token=False)
        if tried_join:
            muc = _get(result, Check.MUC)
            if muc is None or (not muc.success and muc.reason not in _HELD_OUT):
                self.unclear.append(muc or signalling)
                return
            if not muc.success:
                self.cases[JwtCase.NO_TOKEN] = True
                self.refused_join.append("no token")
                self.notes.append(
                    f"a client without a token logs in on {domain} but is kept out of the "
                    f"room ({muc.reason.value})"
                )
                return
            how = f"a client without a token logs in on {domain} and joins a room"
        elif not self.base.join:
            how = (
                f"a client without a token logs in on {domain} (joining is off for this "
                "server, so its join was not tried)"
            )
        else:
            how = f"a client without a token logs in on {domain} (its join could not be tried)"
        if self.key.guests_allowed:
            self.cases[JwtCase.NO_TOKEN] = True
            self.notes.append(f"{how}: guests are allowed (jwt.guests)")
        else:
            self.cases[JwtCase.NO_TOKEN] = False
            self.optional = how

    def judge_other_room(self, result: XmppResult) -> None:
        muc = _get(result, Check.MUC)
        if muc is not None and muc.success:
            self.cases[JwtCase.OTHER_ROOM] = False
            self.accepted.append("token for another room")
        elif _token_refusal(muc):
            self.cases[JwtCase.OTHER_ROOM] = True
            self.refused_join.append("token for another room")
        else:
            self.unclear.append(_first_failure(result) or result.checks[0])

    def refusals_seen(self) -> str:
        parts = []
        if self.refused_login:
            parts.append(f"refused at login: {', '.join(self.refused_login)}")
        if self.refused_join:
            parts.append(f"refused at the join: {', '.join(self.refused_join)}")
        return "; ".join(parts) or "nothing was refused"

    def enforced(self, promoted: XmppResult | None) -> CheckResult:
        seen = self.refusals_seen()
        if self.accepted:
            words = [*self.accepted, *(["no token"] if self.optional else [])]
            return CheckResult(
                Check.JWT_ENFORCED,
                Reason.JWT_NOT_ENFORCED,
                f"the server accepts: {', '.join(words)}; {seen}",
            )
        if self.optional is not None:
            return CheckResult(
                Check.JWT_ENFORCED,
                Reason.JWT_OPTIONAL,
                f"{self.optional}: anyone gets in without a token (allow_empty_token or a "
                "guest domain); set jwt.guests: allowed if that is meant",
            )
        if self.unclear:
            first = self.unclear[0]
            return CheckResult(
                Check.JWT_ENFORCED,
                first.reason,
                f"cannot tell ({first.check.value}: {first.detail}); {seen}",
            )
        if JwtCase.OTHER_ROOM not in self.cases:
            if _any_room(self.key):
                why = 'mod_jitsi\'s JaaS tokens are for any room (room "*")'
                return CheckResult(
                    Check.JWT_ENFORCED,
                    Reason.OK,
                    "; ".join([seen, f"a token for another room is not tried: {why}", *self.notes]),
                )
            if not self.base.join:
                why = "joining is off for this server"
                return CheckResult(
                    Check.JWT_ENFORCED,
                    Reason.OK,
                    "; ".join([seen, f"a token for another room is not tried: {why}", *self.notes]),
                )
            failed = _first_failure(promoted) if promoted is not None else None
            why = f"{failed.check.value}: {failed.reason.value}" if failed else "no room"
            return CheckResult(
                Check.JWT_ENFORCED,
                Reason.SKIPPED,
                f"cannot tell whether a token for another room is refused: the moderator's "
                f"ladder did not get into a room ({why}); {seen}",
            )
        return CheckResult(Check.JWT_ENFORCED, Reason.OK, "; ".join([seen, *self.notes]))


def _any_room(key: TokenKey) -> bool:
    """mod_jitsi's JaaS tokens carry ``room: "*"``: there is no token for another room."""
    return key.style == "mod_jitsi" and key.jaas


async def _maybe(task: Awaitable[XmppResult] | None) -> XmppResult | None:
    return None if task is None else await task


async def _until_joined(task: asyncio.Future[Any], joined: asyncio.Event) -> None:
    """Wait until the ladder ``task`` has joined its room, or has ended without."""
    waiter = asyncio.ensure_future(joined.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


def _owner_cause(second: XmppResult | None) -> str:
    """What most likely made a moderator: false token owner, from a second participant."""
    if second is not None and _first_failure(second) is None and second.role is not None:
        if _is_moderator(second):
            return (
                "likely cause: focus grants owner to every participant whatever the token "
                "says (jicofo's authorization settings, e.g. JWT authentication); change "
                "them, or install the token-moderation plugin, which refuses focus's grants"
            )
        return (
            "likely cause: no moderation module reads the claim, and focus makes the first "
            "participant owner (jicofo's enable-auto-owner); install the token-moderation plugin"
        )
    return (
        "install the token-moderation plugin, or stop focus granting owner (jicofo's "
        "authorization settings)"
    )


def _moderation(
    base: XmppSettings,
    main: XmppResult,
    promoted: XmppResult | None,
    second: XmppResult | None,
    cases: dict[JwtCase, bool],
) -> CheckResult:
    """Judge the moderator claim, in rooms that focus created only."""
    if not base.join or not base.focus or promoted is None:
        off = "joining is off for this server" if not base.join else "signalling.focus is off"
        return CheckResult(Check.MODERATION, Reason.SKIPPED, f"needs focus and a join ({off})")
    unknown = "focus did not create the room, so its creator's role says nothing"
    if main.role is None or not _in_focus_room(main):
        return CheckResult(Check.MODERATION, Reason.MODERATION_UNKNOWN, unknown)
    as_member = not _is_moderator(main)
    cases[JwtCase.MODERATOR_FALSE] = as_member
    failed = _first_failure(promoted)
    promoted_known = failed is None and promoted.role is not None and _in_focus_room(promoted)
    granted = _is_moderator(promoted)
    if promoted_known:
        cases[JwtCase.MODERATOR_TRUE] = granted
    if not as_member:
        return CheckResult(
            Check.MODERATION,
            Reason.MODERATION_CLAIM_IGNORED,
            f"a moderator: false token came out {main.affiliation}/{main.role}: every "
            f"participant can mute and remove others; {_owner_cause(second)}",
        )
    if failed is not None or promoted.role is None:
        detail = f"{failed.check.value}: {failed.detail}" if failed else "no role"
        return CheckResult(
            Check.MODERATION, Reason.MODERATION_UNKNOWN, f"moderator: true case failed ({detail})"
        )
    if not promoted_known:
        return CheckResult(Check.MODERATION, Reason.MODERATION_UNKNOWN, unknown)
    if not granted:
        return CheckResult(
            Check.MODERATION,
            Reason.MODERATION_NOT_GRANTED,
            f"a moderator: true token came out {promoted.affiliation}/{promoted.role}",
        )
    return CheckResult(
        Check.MODERATION,
        Reason.OK,
        f"moderator: false is {main.affiliation}/{main.role}, "
        f"moderator: true is {promoted.affiliation}/{promoted.role}",
    )


def _moderator_token(key: TokenKey) -> Callable[[str], str]:
    def for_room(room: str) -> str:
        return mint(key, room, moderator=True)

    return for_room
