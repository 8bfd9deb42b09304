"""The token check matrix of a server with JWT authentication.

Modeled on Jitsi's own acceptance tests for tokens: a valid token logs in
and joins; a token with a bad signature, an expired token, no token at all,
and a token for another room must each be refused; a ``moderator: false``
token must not come out as moderator, a ``moderator: true`` one must.

The valid case is the main signalling ladder (it logs in with a fresh
``moderator: false`` token for its room and watches its role settle); this
module runs the other cases, each on a stream of its own, and turns all of
them into three checks: ``jwt_valid``, ``jwt_enforced`` and ``moderation``.
A case whose outcome cannot be told (a timeout, a refusal for another
reason) is left out of the cases rather than counted as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from monitor.ladder import Check, JwtCase
from monitor.model import CheckResult, ConfigFacts, Reason, skipped
from monitor.probes.tokens import TokenKey, mint
from monitor.probes.xmpp import XmppResult, XmppSettings, probe_xmpp

__all__ = ["MatrixResult", "probe_matrix", "valid_check"]

_MODERATOR = frozenset({"owner", "moderator"})


@dataclass(frozen=True, slots=True)
class MatrixResult:
    checks: tuple[CheckResult, ...]
    cases: tuple[tuple[JwtCase, bool], ...]


def _get(result: XmppResult, check: Check) -> CheckResult | None:
    return next((c for c in result.checks if c.check is check), None)


def _token_refusal(check: CheckResult | None) -> bool:
    """A join refused over the token (not over a lobby, a password, a full room)."""
    if check is None or check.reason is not Reason.JOIN_REFUSED:
        return False
    return "not-allowed" in check.detail or "mismatch" in check.detail.lower()


def valid_check(main: XmppResult) -> CheckResult:
    """jwt_valid from the main ladder: its token logged in, and the join was not refused over it."""
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
        return CheckResult(Check.JWT_VALID, muc.reason, f"a valid token cannot join: {muc.detail}")
    failed = next((c for c in main.checks if not c.success), None)
    if failed is not None:
        return CheckResult(
            Check.JWT_VALID,
            Reason.SKIPPED,
            f"the token logs in; the join could not be tried ({failed.check.value}: "
            f"{failed.reason.value})",
        )
    return CheckResult(Check.JWT_VALID, Reason.OK, "a valid token logs in and joins")


def _bad_signature(token: str) -> str:
    """The same token with its signature changed."""
    head, _, signature = token.rpartition(".")
    flipped = ("A" if signature[:1] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


async def probe_matrix(
    session: aiohttp.ClientSession,
    facts: ConfigFacts,
    origin: str,
    base: XmppSettings,
    key: TokenKey,
    main: XmppResult,
    valid: CheckResult,
    deadline: float,
) -> MatrixResult:
    """Run the refusal and moderator cases after the main ladder ``main``.

    ``valid`` is ``valid_check(main)``, the case the main ladder was.
    """
    cases: dict[JwtCase, bool] = {}
    if valid.reason is not Reason.SKIPPED:
        cases[JwtCase.VALID] = valid.success
    login = _get(main, Check.SIGNALLING)
    if login is None or not login.success:
        rest = skipped((Check.JWT_ENFORCED, Check.MODERATION), "the valid token's login")
        return MatrixResult((valid, *rest), tuple(cases.items()))
    accepted: list[str] = []
    unclear: list[CheckResult] = []

    # Tokens that must be refused at login, tried side by side.
    stream_only = dataclasses.replace(
        base, focus=False, join=False, settle=0.0, token_for=None, login_domain=facts.domain
    )
    now = time.time()
    refusals = {
        JwtCase.BAD_SIGNATURE: _bad_signature(mint(key, "*")),
        JwtCase.EXPIRED: mint(key, "*", now=now - 3600, lifetime=60),
        JwtCase.NO_TOKEN: None,
    }
    results = await asyncio.gather(
        *(
            probe_xmpp(session, facts, origin, dataclasses.replace(stream_only, token=t), deadline)
            for t in refusals.values()
        )
    )
    notes: list[str] = []
    for case, result in zip(refusals, results, strict=True):
        signalling = _get(result, Check.SIGNALLING)
        if signalling is None:
            continue
        if signalling.success and case is JwtCase.NO_TOKEN and not facts.anonymousdomain:
            # config.js names no guest domain and the server lets people in
            # without a token: it does not require auth, by its own design.
            notes.append("no token is needed on this server (it lets guests in)")
        elif signalling.success:
            cases[case] = False
            accepted.append(case.replace("_", " "))
        elif signalling.reason is Reason.SASL_NOT_ALLOWED:
            cases[case] = True
        else:
            unclear.append(signalling)

    # The moderator: true case joins a room focus creates; while it is in
    # there, a token for another room must be refused when it joins that
    # same room (so the check creates no second conference).
    room = f"healthcheck-{secrets.token_hex(6)}"
    joined = asyncio.Event()
    promoted_task = asyncio.ensure_future(
        probe_xmpp(
            session,
            facts,
            origin,
            dataclasses.replace(
                base, token=None, token_for=_moderator_token(key), room=room, on_joined=joined.set
            ),
            deadline,
        )
    )
    waiter = asyncio.ensure_future(joined.wait())
    try:
        await asyncio.wait({promoted_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    if joined.is_set():
        other = dataclasses.replace(
            base,
            focus=False,
            settle=0.0,
            token=mint(key, f"healthcheck-{secrets.token_hex(6)}"),
            token_for=None,
            room=room,
        )
        result = await probe_xmpp(session, facts, origin, other, deadline)
        muc = _get(result, Check.MUC)
        if muc is not None and muc.success:
            cases[JwtCase.OTHER_ROOM] = False
            accepted.append("token for another room")
        elif _token_refusal(muc):
            cases[JwtCase.OTHER_ROOM] = True
        else:
            unclear.append(next((c for c in result.checks if not c.success), result.checks[0]))
    promoted = await promoted_task

    if accepted:
        enforced = CheckResult(
            Check.JWT_ENFORCED,
            Reason.JWT_NOT_ENFORCED,
            f"the server accepts: {', '.join(accepted)}",
        )
    elif unclear or JwtCase.OTHER_ROOM not in cases:
        first = unclear[0] if unclear else None
        why = f"{first.check.value}: {first.detail}" if first else "the room could not be joined"
        enforced = CheckResult(
            Check.JWT_ENFORCED, first.reason if first else Reason.SKIPPED, f"cannot tell ({why})"
        )
    else:
        refused = "bad signature, expired and other-room tokens are refused"
        if JwtCase.NO_TOKEN in cases:
            refused = "bad signature, expired, missing and other-room tokens are refused"
        enforced = CheckResult(Check.JWT_ENFORCED, Reason.OK, "; ".join([refused, *notes]))
    moderation = _moderation(base, main, promoted, cases)
    return MatrixResult(
        (valid, enforced, moderation), tuple((c, cases[c]) for c in JwtCase if c in cases)
    )


def _in_focus_room(result: XmppResult) -> bool:
    return result.focus_seen and not result.created_room


def _moderation(
    base: XmppSettings, main: XmppResult, promoted: XmppResult, cases: dict[JwtCase, bool]
) -> CheckResult:
    """Judge the moderator claim, in rooms that focus created only."""
    if not base.join or not base.focus:
        return CheckResult(Check.MODERATION, Reason.SKIPPED, "needs focus and a join")
    unknown = "focus did not create the room, so its creator's role says nothing"
    if main.role is None or not _in_focus_room(main):
        return CheckResult(Check.MODERATION, Reason.MODERATION_UNKNOWN, unknown)
    as_member = main.role not in _MODERATOR and main.affiliation not in _MODERATOR
    cases[JwtCase.MODERATOR_FALSE] = as_member
    failed = next((c for c in promoted.checks if not c.success), None)
    promoted_known = failed is None and promoted.role is not None and _in_focus_room(promoted)
    granted = promoted.role in _MODERATOR or promoted.affiliation in _MODERATOR
    if promoted_known:
        cases[JwtCase.MODERATOR_TRUE] = granted
    if not as_member:
        return CheckResult(
            Check.MODERATION,
            Reason.MODERATION_CLAIM_IGNORED,
            f"a moderator: false token came out {main.affiliation}/{main.role}: every "
            "participant can mute and remove others; install the token-moderation plugin",
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
