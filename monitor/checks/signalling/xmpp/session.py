"""The session steps of the signalling ladder, as a Jitsi client does them.

Steps, each timed as a phase: ``upgrade`` (the WebSocket handshake with
sub-protocol ``xmpp``), ``open`` (stream open and features), ``auth`` (SASL
ANONYMOUS, where Jitsi checks a token), ``bind`` (stream restart and resource
binding), ``ping`` (XEP-0199 round trip: the signalling RTT), ``focus`` (the
conference request to jicofo), ``join`` (MUC presence and the self-presence
back), ``settle`` (reading role changes after the join), ``leave``
(unavailable presence and stream close).

The probe always leaves the room it joined and closes the stream, also on a
timeout or cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Final
from xml.etree.ElementTree import Element

import aiohttp

from monitor import escape
from monitor.checks.signalling.rows import ROWS
from monitor.checks.signalling.xmpp.bosh import BoshTransport
from monitor.checks.signalling.xmpp.framing import (
    NS_BIND,
    NS_CLIENT,
    NS_FOCUS,
    NS_MUC,
    NS_MUC_USER,
    NS_PING,
    NS_SASL,
    NS_STREAMS,
    condition,
    error_text,
    esc,
    q,
)
from monitor.checks.signalling.xmpp.settings import XmppSettings
from monitor.checks.signalling.xmpp.transport import (
    WebSocketTransport,
    check_same_host,
    check_token_target,
    signalling_url,
)
from monitor.ladder import XMPP_PHASES, Check
from monitor.model import CheckResult, ConfigFacts, Phase, Reason, skipped
from monitor.net import NetError

__all__ = [
    "XmppResult",
    "XmppSettings",
    "probe_xmpp",
    "signalling_checks",
    "skipped_checks",
    "xmpp_domain",
]

# Kept back from the ladder's deadline so that leaving and closing still fit
# (at most this, and at most a quarter of the time the ladder has).
LEAVE_GRACE: Final = 2.0

# Error conditions a server answers with for a focus that is not connected.
_FOCUS_GONE: Final = frozenset(
    {"service-unavailable", "remote-server-not-found", "remote-server-timeout", "item-not-found"}
)


@dataclass(frozen=True, slots=True)
class XmppResult:
    """What the signalling ladder found (a report's ``result(XmppResult)``)."""

    family: ClassVar[str] = "signalling"

    checks: tuple[CheckResult, ...] = ()
    phases: tuple[Phase, ...] = ()
    ping_rtt: float | None = None
    room: str | None = None
    role: str | None = None
    affiliation: str | None = None
    focus_seen: bool = False
    created_room: bool = False


@dataclass
class XmppSession:
    url: str
    origin: str
    domain: str
    muc: str
    focus_jid: str
    settings: XmppSettings
    session: aiohttp.ClientSession
    bosh: bool = False  # the transport: BOSH, else WebSocket
    grace: float = LEAVE_GRACE
    transport: WebSocketTransport | BoshTransport | None = None
    phases: dict[str, float] = field(default_factory=dict)
    current: str = "upgrade"
    ids: int = 0
    room: str = field(default_factory=lambda: f"healthcheck-{secrets.token_hex(6)}")
    nick: str = field(default_factory=lambda: secrets.token_hex(4))
    joined: bool = False
    ping_rtt: float | None = None
    role: str | None = None
    affiliation: str | None = None
    focus_seen: bool = False
    created_room: bool = False

    @property
    def room_jid(self) -> str:
        return f"{self.room}@{self.muc}"

    def is_self(self, presence: Element) -> bool:
        """A presence about our own occupant: from our nick, or marked with status 110.

        JIDs compare without case, and a server may rename the nick (status 210).
        """
        room, _, nick = presence.get("from", "").partition("/")
        if room.lower() != self.room_jid.lower():
            return False
        if nick == self.nick:
            return True
        x = presence.find(q(NS_MUC_USER, "x"))
        return x is not None and any(
            s.get("code") == "110" for s in x.findall(q(NS_MUC_USER, "status"))
        )

    def next_id(self, kind: str) -> str:
        self.ids += 1
        return f"{kind}-{self.ids}"

    def step(self, name: str) -> float:
        self.current = name
        return time.monotonic()

    def done(self, name: str, started: float) -> None:
        self.phases[name] = time.monotonic() - started

    # -- wire ----------------------------------------------------------------
    async def send(self, xml: str) -> None:
        assert self.transport is not None
        await self.transport.send(xml)

    async def recv(self) -> Element:
        assert self.transport is not None
        return await self.transport.recv()

    async def expect(self, match: Callable[[Element], bool]) -> Element:
        """Frames until one matches; others (presences of others, messages) are passed over."""
        while True:
            elem = await self.recv()
            if match(elem):
                return elem

    async def open_stream(self, to: str, restart: bool = False) -> Element:
        assert self.transport is not None
        await self.transport.open(to, restart)
        return await self.expect(_stream_features)

    async def iq(self, kind: str, to: str | None, payload: str, id_prefix: str) -> Element:
        iq_id = self.next_id(id_prefix)
        to_attr = f' to="{esc(to)}"' if to else ""
        await self.send(
            f'<iq xmlns="{NS_CLIENT}" type="{kind}"{to_attr} id="{iq_id}">{payload}</iq>'
        )
        return await self.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id)

    # -- steps ---------------------------------------------------------------
    async def upgrade(self) -> None:
        """Connect the transport: the WebSocket upgrade, or nothing for BOSH."""
        t0 = self.step("upgrade")
        query = {"room": self.room}
        token = self.settings.token
        if token is None and self.settings.token_for is not None:
            token = self.settings.token_for(self.room)
        url = signalling_url(self.url, ("http", "https") if self.bosh else ("ws", "wss"))
        if token:
            check_token_target(str(url), (self.origin, *self.settings.token_origins))
            query["token"] = token
        elif self.settings.same_host:
            check_same_host(url, self.origin)
        if self.bosh:
            self.transport = BoshTransport(self.session, url, query, self.origin, self.settings)
        else:
            self.transport = await WebSocketTransport.connect(
                self.settings.resolver, url, query, self.origin, self.settings
            )
        self.done("upgrade", t0)

    async def login(self) -> None:
        t0 = self.step("open")
        features = await self.open_stream(self.domain)
        self.done("open", t0)
        t0 = self.step("auth")
        mechanisms = [
            (m.text or "").strip()
            for m in features.iter(q(NS_SASL, "mechanism"))
            if m.text and len(m.text) < 64
        ]
        if "ANONYMOUS" not in mechanisms:
            offered = ", ".join(mechanisms[:8]) or "none"
            raise NetError(
                Reason.SASL_NOT_ALLOWED,
                f"the server does not offer anonymous login (mechanisms: {offered})",
            )
        await self.send(f'<auth xmlns="{NS_SASL}" mechanism="ANONYMOUS"/>')
        answer = await self.expect(
            lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure"))
        )
        if answer.tag == q(NS_SASL, "failure"):
            cond = condition(answer, NS_SASL)
            text = error_text(answer, NS_SASL)
            raise NetError(Reason.SASL_NOT_ALLOWED, f"login refused: {cond} {text}".strip())
        self.done("auth", t0)
        t0 = self.step("bind")
        await self.open_stream(self.domain, restart=True)
        result = await self.iq("set", None, f'<bind xmlns="{NS_BIND}"/>', "bind")
        if result.get("type") != "result":
            cond = condition(result.find(q(NS_CLIENT, "error")))
            raise NetError(Reason.BIND_FAILED, f"resource binding failed: {cond}")
        self.done("bind", t0)

    async def ping(self) -> None:
        t0 = self.step("ping")
        await self.iq("get", self.domain, f'<ping xmlns="{NS_PING}"/>', "ping")
        # Any answer, even an error, is a full round trip through the server.
        # It ends when the answer's bytes arrived (over a WebSocket), not when
        # this coroutine got the loop back.
        now = time.monotonic()
        arrived = self.transport.arrived() if self.transport is not None else None
        end = min(now, arrived) if arrived is not None and arrived >= t0 else now
        self.phases["ping"] = end - t0
        self.ping_rtt = self.phases["ping"]

    async def focus(self) -> None:
        t0 = self.step("focus")
        payload = (
            f'<conference xmlns="{NS_FOCUS}" room="{esc(self.room_jid)}" '
            f'machine-uid="{uuid.uuid4().hex}"/>'
        )
        answer = await self.iq("set", self.focus_jid, payload, "focus")
        self.done("focus", t0)
        if answer.get("type") == "error":
            error = answer.find(q(NS_CLIENT, "error"))
            cond = condition(error)
            if cond in _FOCUS_GONE:
                text = error_text(error)
                raise NetError(
                    Reason.FOCUS_UNAVAILABLE,
                    f"focus {self.focus_jid} is not there ({cond} {text})".replace(" )", ")"),
                )
            text = error_text(error)
            raise NetError(Reason.FOCUS_REFUSED, f"focus refused: {cond} {text}".strip())
        conference = answer.find(q(NS_FOCUS, "conference"))
        if conference is None or conference.get("ready") != "true":
            raise NetError(Reason.FOCUS_NOT_READY, "focus answered ready=false: retry later")

    async def join(self) -> None:
        t0 = self.step("join")
        occupant = f"{self.room_jid}/{self.nick}"
        self.joined = True  # from here on, leaving is owed even if no answer comes
        await self.send(
            f'<presence xmlns="{NS_CLIENT}" to="{esc(occupant)}"><x xmlns="{NS_MUC}"/></presence>'
        )
        while not self.observe(await self.expect(_is_presence)):
            pass
        self.done("join", t0)
        if self.settings.on_joined is not None:
            self.settings.on_joined()
        if self.settings.settle > 0:
            # Roles change after the join (jicofo grants owner in a later
            # presence): read self-presences for a while, keep the last.
            t1 = self.step("settle")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.settle):
                    while True:
                        self.observe(await self.expect(_is_presence))
            self.done("settle", t1)

    def observe(self, presence: Element) -> bool:
        """Note what a presence in our room says; True for our own self-presence."""
        room, _, nick = presence.get("from", "").partition("/")
        if room.lower() != self.room_jid.lower():
            return False
        if nick == "focus":
            self.focus_seen = presence.get("type") != "unavailable"
            return False
        if not self.is_self(presence):
            return False
        if presence.get("type") == "error":
            self.joined = False
            raise _join_error(presence.find(q(NS_CLIENT, "error")))
        x = presence.find(q(NS_MUC_USER, "x"))
        item = x.find(q(NS_MUC_USER, "item")) if x is not None else None
        if x is None or item is None or presence.get("type") == "unavailable":
            return False
        codes = {s.get("code") for s in x.findall(q(NS_MUC_USER, "status"))}
        if "201" in codes:  # the room was new: we created it, not focus
            self.created_room = True
        self.affiliation = (item.get("affiliation") or "")[:32] or None
        self.role = (item.get("role") or "")[:32] or None
        return True

    async def leave(self) -> None:
        """Leave the room (if joined) and close the stream; best effort, bounded."""
        transport = self.transport
        if transport is None:
            return
        if transport.closed:  # the server ended it: only drop what is still open
            await transport.abort()
            return
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self.grace):
                if self.joined:
                    occupant = f"{self.room_jid}/{self.nick}"
                    await self.send(
                        f'<presence xmlns="{NS_CLIENT}" type="unavailable" to="{esc(occupant)}"/>'
                    )
                    await self.expect(
                        lambda e: (
                            e.tag == q(NS_CLIENT, "presence")
                            and e.get("type") == "unavailable"
                            and self.is_self(e)
                        )
                    )
                    self.joined = False
                await transport.close_stream()
        except (NetError, TimeoutError, aiohttp.ClientError, ConnectionError):
            pass
        finally:
            await transport.abort()
            self.phases["leave"] = time.monotonic() - t0


_JOIN_ERRORS: Final = {
    "registration-required": Reason.LOBBY,
    "service-unavailable": Reason.ROOM_FULL,
    "not-authorized": Reason.PASSWORD_REQUIRED,
}


def _stream_features(elem: Element) -> bool:
    """The stream's features; features in another namespace are named as such."""
    if elem.tag == q(NS_STREAMS, "features"):
        return True
    namespace, _, name = (
        elem.tag[1:].rpartition("}") if elem.tag.startswith("{") else ("", "", elem.tag)
    )
    if name == "features":
        raise NetError(
            Reason.PROTOCOL_ERROR,
            f"the server sent stream features in the namespace {escape.plain(namespace, 80)!r}, "
            f"not {NS_STREAMS!r}",
        )
    return False


def _is_presence(elem: Element) -> bool:
    return elem.tag == q(NS_CLIENT, "presence")


def _join_error(error: Element | None) -> NetError:
    cond = condition(error)
    text = error_text(error)
    if error is not None and any(c.tag.endswith("}lobbyroom") for c in error.iter()):
        return NetError(Reason.LOBBY, f"the room has a lobby ({cond})")
    if "room creation is restricted" in text.lower():
        return NetError(
            Reason.ROOM_CREATION_RESTRICTED,
            "join refused: Room creation is restricted (focus has not created the room)",
        )
    if "wait" in text.lower() and "host" in text.lower():
        return NetError(Reason.WAIT_FOR_HOST, f"join refused: {text}")
    reason = _JOIN_ERRORS.get(cond, Reason.JOIN_REFUSED)
    return NetError(reason, f"join refused: {cond} {text}".strip())


def xmpp_domain(facts: ConfigFacts, with_token: bool) -> str | None:
    """The virtual host to log in to: the anonymous one unless a token is used."""
    if facts.anonymousdomain and not with_token:
        return facts.anonymousdomain
    return facts.domain


async def probe_xmpp(
    session: aiohttp.ClientSession,
    facts: ConfigFacts,
    origin: str,
    settings: XmppSettings,
    deadline: float,
) -> XmppResult:
    """Run the signalling ladder until the loop time ``deadline`` (minus a grace to leave).

    Never raises for the server's faults; every outcome is in the result.
    """
    checks: list[CheckResult] = []
    domain = settings.login_domain or xmpp_domain(
        facts, settings.token is not None or settings.token_for is not None
    )
    url = facts.websocket or facts.bosh
    if not url or not domain:
        missing = "a websocket or bosh URL" if not url else "hosts.domain"
        checks.append(
            CheckResult(Check.SIGNALLING, Reason.NO_SIGNALLING_URL, f"config.js names no {missing}")
        )
        checks += skipped_checks(settings, "signalling", frozenset({Check.SIGNALLING}))
        return XmppResult(tuple(checks), ())
    ladder = XmppSession(
        url=url,
        bosh=not facts.websocket,
        origin=origin,
        domain=domain,
        muc=facts.muc or f"conference.{facts.domain or domain}",
        focus_jid=facts.focus or f"focus.{facts.domain or domain}",
        settings=settings,
        session=session,
    )
    if settings.room:
        ladder.room = settings.room
    step_check = Check.SIGNALLING
    loop = asyncio.get_running_loop()
    ladder.grace = min(LEAVE_GRACE, max(0.0, deadline - loop.time()) / 4)
    try:
        async with asyncio.timeout_at(deadline - ladder.grace):
            note = "over BOSH" if ladder.bosh else ""
            try:
                await ladder.upgrade()
            except NetError as exc:
                # A refused URL or token target is the server's config, not its
                # proxy: BOSH must not hide it (browsers use the WebSocket).
                if ladder.bosh or not facts.bosh or exc.reason is Reason.PROTOCOL_ERROR:
                    raise
                # A proxy that does not pass WebSockets is common: try BOSH.
                note = f"over BOSH; the WebSocket failed: {exc.detail}"
                ladder.url, ladder.bosh = facts.bosh, True
                await ladder.upgrade()
            await ladder.login()
            await ladder.ping()
            if settings.after_login is not None:
                await settings.after_login(ladder.iq, facts.domain or domain)
            checks.append(CheckResult(Check.SIGNALLING, Reason.OK, note, _phases(ladder)))
            if settings.focus:
                step_check = Check.FOCUS
                await ladder.focus()
                checks.append(CheckResult(Check.FOCUS, Reason.OK, ""))
            if settings.join:
                step_check = Check.MUC
                await ladder.join()
                checks.append(
                    CheckResult(
                        Check.MUC,
                        Reason.OK,
                        f"joined as {ladder.affiliation or 'none'}/{ladder.role or 'none'}",
                    )
                )
    except NetError as exc:
        checks.append(CheckResult(step_check, exc.reason, exc.detail, _phases(ladder)))
    except TimeoutError:
        what = {"focus": "no answer from focus", "join": "no answer to the join"}.get(
            ladder.current, f"no answer before the deadline (during {ladder.current})"
        )
        reason = Reason.FOCUS_UNAVAILABLE if ladder.current == "focus" else Reason.TIMEOUT
        checks.append(CheckResult(step_check, reason, what, _phases(ladder)))
    finally:
        await ladder.leave()
    checks += skipped_checks(settings, step_check.value, frozenset(c.check for c in checks))
    return XmppResult(
        checks=tuple(checks),
        phases=_phases(ladder),
        ping_rtt=ladder.ping_rtt,
        room=ladder.room,
        role=ladder.role,
        affiliation=ladder.affiliation,
        focus_seen=ladder.focus_seen,
        created_room=ladder.created_room,
    )


def _phases(ladder: XmppSession) -> tuple[Phase, ...]:
    return tuple(Phase(name, ladder.phases[name]) for name in XMPP_PHASES if name in ladder.phases)


def signalling_checks(settings: XmppSettings) -> tuple[Check, ...]:
    """The signalling checks ``settings`` run, in ladder order."""
    runs = {Check.SIGNALLING: True, Check.FOCUS: settings.focus, Check.MUC: settings.join}
    return tuple(r.check for r in ROWS if runs.get(r.check, False))


def skipped_checks(
    settings: XmppSettings, failed: str, done: frozenset[Check] = frozenset()
) -> tuple[CheckResult, ...]:
    """'skipped' results for the signalling checks ``settings`` run that are not in ``done``."""
    return skipped((c for c in signalling_checks(settings) if c not in done), failed)
