"""The token check matrix of a server with JWT authentication.

Modeled on Jitsi's own acceptance tests for tokens: a valid token logs in
and joins; a token with a bad signature, an expired token, no token at all,
and a token for another room must each be refused; a ``moderator: false``
token must not come out as moderator, a ``moderator: true`` one must.

The valid case is the main signalling ladder (it logs in with a fresh
``moderator: false`` token for its room and watches its role settle); this
module runs the other cases, each on a stream of its own, and turns all of
them into three checks: ``jwt_valid``, ``jwt_enforced`` and ``moderation``.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from monitor.model import Check, CheckResult, ConfigFacts, Reason
from monitor.probes.tokens import TokenKey, mint
from monitor.probes.xmpp import XmppResult, XmppSettings, probe_xmpp

__all__ = ["CASES", "MatrixResult", "probe_matrix", "valid_check"]

CASES = (
    "valid",
    "bad_signature",
    "expired",
    "no_token",
    "other_room",
    "moderator_false",
    "moderator_true",
)
_MODERATOR = frozenset({"owner", "moderator"})


@dataclass(frozen=True, slots=True)
class MatrixResult:
    checks: tuple[CheckResult, ...]
    cases: tuple[tuple[str, bool], ...]


def _reason(result: XmppResult, check: Check) -> CheckResult | None:
    return next((c for c in result.checks if c.check is check), None)


def valid_check(main: XmppResult) -> CheckResult:
    """jwt_valid from the main ladder: its token logged in and joined."""
    failed = next((c for c in main.checks if not c.success), None)
    if failed is None:
        return CheckResult(Check.JWT_VALID, Reason.OK, "a valid token logs in and joins")
    return CheckResult(
        Check.JWT_VALID, failed.reason, f"with a valid token, {failed.check.value}: {failed.detail}"
    )


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
    deadline: float,
) -> MatrixResult:
    """Run the refusal and moderator cases after the main ladder ``main``."""
    valid = valid_check(main)
    cases: dict[str, bool] = {"valid": valid.success}
    if not valid.success:
        skipped = "not tried: a valid token does not work"
        return MatrixResult(
            (
                valid,
                CheckResult(Check.JWT_ENFORCED, Reason.SKIPPED, skipped),
                CheckResult(Check.MODERATION, Reason.SKIPPED, skipped),
            ),
            tuple(cases.items()),
        )
    domain = facts.domain
    stream_only = dataclasses.replace(
        base, focus=False, join=False, settle=0.0, token_for=None, login_domain=domain
    )
    now = time.time()
    refusals = {
        "bad_signature": _bad_signature(mint(key, "*")),
        "expired": mint(key, "*", now=now - 3600, lifetime=60),
        "no_token": None,
    }
    accepted: list[str] = []
    unclear: list[CheckResult] = []
    for case, token in refusals.items():
        result = await probe_xmpp(
            session, facts, origin, dataclasses.replace(stream_only, token=token), deadline
        )
        signalling = _reason(result, Check.SIGNALLING)
        refused = signalling is not None and signalling.reason is Reason.SASL_NOT_ALLOWED
        cases[case] = refused
        if signalling is not None and signalling.success:
            accepted.append(case.replace("_", " "))
        elif not refused and signalling is not None:
            unclear.append(signalling)
    # A token for another room: it logs in, and the join must be refused.
    other = f"healthcheck-{secrets.token_hex(6)}"
    result = await probe_xmpp(
        session,
        facts,
        origin,
        dataclasses.replace(base, token=mint(key, other), token_for=None, settle=0.0),
        deadline,
    )
    muc = _reason(result, Check.MUC)
    cases["other_room"] = muc is not None and muc.reason is Reason.JOIN_REFUSED
    if muc is not None and muc.success:
        accepted.append("token for another room")
    elif not cases["other_room"]:
        unclear.append(next((c for c in result.checks if not c.success), result.checks[0]))

    if accepted:
        enforced = CheckResult(
            Check.JWT_ENFORCED,
            Reason.JWT_NOT_ENFORCED,
            f"the server accepts: {', '.join(accepted)}",
        )
    elif unclear:
        first = unclear[0]
        enforced = CheckResult(
            Check.JWT_ENFORCED, first.reason, f"cannot tell ({first.check.value}: {first.detail})"
        )
    else:
        enforced = CheckResult(
            Check.JWT_ENFORCED,
            Reason.OK,
            "bad signature, expired, missing and other-room tokens are refused",
        )

    moderation = await _moderation(session, facts, origin, base, key, main, deadline, cases)
    return MatrixResult(
        (valid, enforced, moderation), tuple((c, cases[c]) for c in CASES if c in cases)
    )


async def _moderation(
    session: aiohttp.ClientSession,
    facts: ConfigFacts,
    origin: str,
    base: XmppSettings,
    key: TokenKey,
    main: XmppResult,
    deadline: float,
    cases: dict[str, bool],
) -> CheckResult:
    """Judge the moderator claim, in rooms that focus created."""
    if not base.join or not base.focus:
        return CheckResult(Check.MODERATION, Reason.SKIPPED, "needs focus and a join")
    if main.created_room or not main.focus_seen:
        return CheckResult(
            Check.MODERATION,
            Reason.MODERATION_UNKNOWN,
            "focus did not create the room, so its creator's role says nothing",
        )
    as_member = main.role not in _MODERATOR and main.affiliation not in _MODERATOR
    cases["moderator_false"] = as_member
    promoted = await probe_xmpp(
        session,
        facts,
        origin,
        dataclasses.replace(base, token=None, token_for=_moderator_token(key)),
        deadline,
    )
    granted = promoted.role in _MODERATOR or promoted.affiliation in _MODERATOR
    cases["moderator_true"] = granted
    if not as_member:
        return CheckResult(
            Check.MODERATION,
            Reason.MODERATION_CLAIM_IGNORED,
            f"a moderator: false token came out {main.affiliation}/{main.role}: every "
            "participant can mute and remove others; install the token-moderation plugin",
        )
    if not promoted.checks or not all(c.success for c in promoted.checks):
        failed = next((c for c in promoted.checks if not c.success), None)
        detail = f"{failed.check.value}: {failed.detail}" if failed else "no result"
        return CheckResult(
            Check.MODERATION, Reason.MODERATION_UNKNOWN, f"moderator: true case failed ({detail})"
        )
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
