"""The signalling part of a ladder: XMPP over WebSocket (RFC 7395), as a Jitsi client.

Steps, each timed as a phase: ``upgrade`` (the WebSocket handshake with
sub-protocol ``xmpp``), ``open`` (stream open and features), ``auth`` (SASL
ANONYMOUS, where Jitsi checks a token), ``bind`` (stream restart and resource
binding), ``ping`` (XEP-0199 round trip: the signalling RTT), ``focus`` (the
conference request to jicofo), ``join`` (MUC presence and the self-presence
back), ``leave`` (unavailable presence and stream close).

Every frame is hostile input: at most ``MAX_FRAME`` bytes, parsed with
defusedxml (no DTDs, no entities). The probe always leaves the room it
joined and closes the stream, also on a timeout or cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import secrets
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from xml.etree.ElementTree import Element

import aiohttp
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from yarl import URL

from monitor.model import Check, CheckResult, ConfigFacts, Phase, Reason

__all__ = [
    "MAX_FRAME",
    "RedirectRefused",
    "XmppResult",
    "XmppSettings",
    "no_redirects",
    "probe_xmpp",
    "skipped_checks",
]

MAX_FRAME: Final = 256 * 1024
# Kept back from the ladder's deadline so that leaving and closing still fit
# (at most this, and at most a quarter of the time the ladder has).
LEAVE_GRACE: Final = 2.0
# How long the WebSocket close handshake may take before the socket is dropped.
CLOSE_WAIT: Final = 0.5

NS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAMS: Final = "http://etherx.jabber.org/streams"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT: Final = "jabber:client"
NS_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING: Final = "urn:xmpp:ping"
NS_FOCUS: Final = "http://jitsi.org/protocol/focus"
NS_HTTPBIND: Final = "http://jabber.org/protocol/httpbind"
NS_XBOSH: Final = "urn:xmpp:xbosh"
NS_STREAM_ERRORS: Final = "urn:ietf:params:xml:ns:xmpp-streams"
NS_MUC: Final = "http://jabber.org/protocol/muc"
NS_MUC_USER: Final = "http://jabber.org/protocol/muc#user"

# Error conditions a server answers with for a focus that is not connected.
_FOCUS_GONE: Final = frozenset(
    {"service-unavailable", "remote-server-not-found", "remote-server-timeout", "item-not-found"}
)
PHASES: Final = ("upgrade", "open", "auth", "bind", "ping", "focus", "join", "settle", "leave")


@dataclass(frozen=True, slots=True)
class XmppSettings:
    """What the signalling ladder does for one server."""

    focus: bool = True
    join: bool = True
    token: str | None = None
    # Mints a token for the ladder's room (servers with JWT authentication).
    token_for: Callable[[str], str] | None = None
    # After joining, keep reading presences this long for role changes.
    settle: float = 0.0
    # Log in on this virtual host instead of the one config.js implies.
    login_domain: str | None = None
    # Use this room instead of a fresh random one (it must be a healthcheck- room).
    room: str | None = None
    # Called once the join has been answered with our self-presence.
    on_joined: Callable[[], None] | None = None
    user_agent: str = "jitsi-monitor"
    ssl_context: ssl.SSLContext | None = None
    # Refuse signalling on another host than the server's (an on-demand probe of a URL).
    same_host: bool = False


@dataclass(frozen=True, slots=True)
class XmppResult:
    """What the signalling ladder found."""

    checks: tuple[CheckResult, ...]
    phases: tuple[Phase, ...]
    ping_rtt: float | None = None
    room: str | None = None
    role: str | None = None
    affiliation: str | None = None
    focus_seen: bool = False
    created_room: bool = False


class XmppError(Exception):
    """A step failed for a reason on the server's side."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _text_of(elem: Element | None, limit: int = 200) -> str:
    if elem is None:
        return ""
    text = " ".join("".join(elem.itertext()).split())
    return text[:limit]


def _condition(error: Element | None, ns: str = NS_STANZAS) -> str:
    """The defined condition of an error element (e.g. ``not-allowed``)."""
    if error is None:
        return "unknown"
    for child in error:
        if child.tag.startswith(f"{{{ns}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1][:64]
    return "unknown"


def _error_text(error: Element | None, ns: str = NS_STANZAS) -> str:
    return _text_of(error.find(_q(ns, "text"))) if error is not None else ""


@dataclass
class _Ladder:
    url: str
    origin: str
    domain: str
    muc: str
    focus_jid: str
    settings: XmppSettings
    session: aiohttp.ClientSession
    bosh: bool = False  # the transport: BOSH, else WebSocket
    grace: float = LEAVE_GRACE
    transport: _WebSocket | _Bosh | None = None
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
        x = presence.find(_q(NS_MUC_USER, "x"))
        return x is not None and any(
            s.get("code") == "110" for s in x.findall(_q(NS_MUC_USER, "status"))
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
        return await self.expect(lambda e: e.tag == _q(NS_STREAMS, "features"))

    async def iq(self, kind: str, to: str | None, payload: str, id_prefix: str) -> Element:
        iq_id = self.next_id(id_prefix)
        to_attr = f' to="{_esc(to)}"' if to else ""
        await self.send(
            f'<iq xmlns="{NS_CLIENT}" type="{kind}"{to_attr} id="{iq_id}">{payload}</iq>'
        )
        return await self.expect(lambda e: e.tag == _q(NS_CLIENT, "iq") and e.get("id") == iq_id)

    # -- steps ---------------------------------------------------------------
    async def upgrade(self) -> None:
        """Connect the transport: the WebSocket upgrade, or nothing for BOSH."""
        t0 = self.step("upgrade")
        query = {"room": self.room}
        token = self.settings.token
        if token is None and self.settings.token_for is not None:
            token = self.settings.token_for(self.room)
        if token:
            _check_token_target(self.url, self.origin)
            query["token"] = token
        elif self.settings.same_host:
            _check_same_host(self.url, self.origin)
        _check_url(self.url, ("http", "https") if self.bosh else ("ws", "wss"))
        if self.bosh:
            self.transport = _Bosh(self.session, self.url, query, self.origin, self.settings)
        else:
            self.transport = await _WebSocket.connect(
                self.session, self.url, query, self.origin, self.settings
            )
        self.done("upgrade", t0)

    async def login(self) -> None:
        t0 = self.step("open")
        features = await self.open_stream(self.domain)
        self.done("open", t0)
        t0 = self.step("auth")
        mechanisms = [
            (m.text or "").strip()
            for m in features.iter(_q(NS_SASL, "mechanism"))
            if m.text and len(m.text) < 64
        ]
        if "ANONYMOUS" not in mechanisms:
            offered = ", ".join(mechanisms[:8]) or "none"
            raise XmppError(
                Reason.SASL_NOT_ALLOWED,
                f"the server does not offer anonymous login (mechanisms: {offered})",
            )
        await self.send(f'<auth xmlns="{NS_SASL}" mechanism="ANONYMOUS"/>')
        answer = await self.expect(
            lambda e: e.tag in (_q(NS_SASL, "success"), _q(NS_SASL, "failure"))
        )
        if answer.tag == _q(NS_SASL, "failure"):
            condition = _condition(answer, NS_SASL)
            text = _error_text(answer, NS_SASL)
            raise XmppError(Reason.SASL_NOT_ALLOWED, f"login refused: {condition} {text}".strip())
        self.done("auth", t0)
        t0 = self.step("bind")
        await self.open_stream(self.domain, restart=True)
        result = await self.iq("set", None, f'<bind xmlns="{NS_BIND}"/>', "bind")
        if result.get("type") != "result":
            condition = _condition(result.find(_q(NS_CLIENT, "error")))
            raise XmppError(Reason.BIND_FAILED, f"resource binding failed: {condition}")
        self.done("bind", t0)

    async def ping(self) -> None:
        t0 = self.step("ping")
        await self.iq("get", self.domain, f'<ping xmlns="{NS_PING}"/>', "ping")
        # Any answer, even an error, is a full round trip through the server.
        self.done("ping", t0)
        self.ping_rtt = self.phases["ping"]

    async def focus(self) -> None:
        t0 = self.step("focus")
        payload = (
            f'<conference xmlns="{NS_FOCUS}" room="{_esc(self.room_jid)}" '
            f'machine-uid="{uuid.uuid4().hex}"/>'
        )
        answer = await self.iq("set", self.focus_jid, payload, "focus")
        self.done("focus", t0)
        if answer.get("type") == "error":
            error = answer.find(_q(NS_CLIENT, "error"))
            condition = _condition(error)
            if condition in _FOCUS_GONE:
                text = _error_text(error)
                raise XmppError(
                    Reason.FOCUS_UNAVAILABLE,
                    f"focus {self.focus_jid} is not there ({condition} {text})".replace(" )", ")"),
                )
            text = _error_text(error)
            raise XmppError(Reason.FOCUS_REFUSED, f"focus refused: {condition} {text}".strip())
        conference = answer.find(_q(NS_FOCUS, "conference"))
        if conference is None or conference.get("ready") != "true":
            raise XmppError(Reason.FOCUS_NOT_READY, "focus answered ready=false: retry later")

    async def join(self) -> None:
        t0 = self.step("join")
        occupant = f"{self.room_jid}/{self.nick}"
        self.joined = True  # from here on, leaving is owed even if no answer comes
        await self.send(
            f'<presence xmlns="{NS_CLIENT}" to="{_esc(occupant)}"><x xmlns="{NS_MUC}"/></presence>'
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
            raise _join_error(presence.find(_q(NS_CLIENT, "error")))
        x = presence.find(_q(NS_MUC_USER, "x"))
        item = x.find(_q(NS_MUC_USER, "item")) if x is not None else None
        if x is None or item is None or presence.get("type") == "unavailable":
            return False
        codes = {s.get("code") for s in x.findall(_q(NS_MUC_USER, "status"))}
        if "201" in codes:  # the room was new: we created it, not focus
            self.created_room = True
        self.affiliation = (item.get("affiliation") or "")[:32] or None
        self.role = (item.get("role") or "")[:32] or None
        return True

    async def leave(self) -> None:
        """Leave the room (if joined) and close the stream; best effort, bounded."""
        transport = self.transport
        if transport is None or transport.closed:
            return
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self.grace):
                if self.joined:
                    occupant = f"{self.room_jid}/{self.nick}"
                    await self.send(
                        f'<presence xmlns="{NS_CLIENT}" type="unavailable" to="{_esc(occupant)}"/>'
                    )
                    await self.expect(
                        lambda e: (
                            e.tag == _q(NS_CLIENT, "presence")
                            and e.get("type") == "unavailable"
                            and self.is_self(e)
                        )
                    )
                    self.joined = False
                await transport.close_stream()
        except (XmppError, TimeoutError, aiohttp.ClientError, ConnectionError):
            pass
        finally:
            await transport.abort()
            self.phases["leave"] = time.monotonic() - t0


def _parse_frame(data: str | bytes) -> Element:
    """One frame (or BOSH body) as an element: no DTDs, no entities, bounded size."""
    if len(data) > MAX_FRAME:
        raise XmppError(Reason.XML_ERROR, "frame too large")
    try:
        elem: Element = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, LookupError, RecursionError) as exc:
        # LookupError: an unknown encoding in the XML declaration.
        raise XmppError(Reason.XML_ERROR, f"bad XML frame: {str(exc)[:120]}") from None
    if elem.tag == _q(NS_STREAMS, "error"):
        condition = _condition(elem, NS_STREAM_ERRORS)
        text = _error_text(elem, NS_STREAM_ERRORS)
        raise XmppError(Reason.STREAM_ERROR, f"stream error {condition} {text}".strip())
    return elem


def _check_url(text: str, schemes: tuple[str, ...]) -> None:
    """Refuse a malformed signalling URL from config.js before using it."""
    try:
        url = URL(text)
        ok = url.scheme in schemes and bool(url.host) and url.port is not None
    except (ValueError, TypeError):
        ok = False
    if not ok:
        shown = text.split("?", 1)[0][:120]
        raise XmppError(
            Reason.PROTOCOL_ERROR,
            f"config.js names a malformed signalling URL {shown!r} (want {'/'.join(schemes)})",
        )


def _check_token_target(url_text: str, origin: str) -> None:
    """Send a token only to the server it is for, and encrypted when the server is.

    config.js is the server's own word, but a tampered one must not be able
    to collect a valid token for the platform.
    """
    url, home = URL(url_text), URL(origin)
    if (url.host or "").lower() != (home.host or "").lower():
        raise XmppError(
            Reason.PROTOCOL_ERROR,
            f"config.js sends signalling to another host ({url.host}); no token is sent there",
        )
    if home.scheme == "https" and url.scheme not in ("wss", "https"):
        raise XmppError(
            Reason.PROTOCOL_ERROR, "config.js sends signalling unencrypted; no token is sent there"
        )


class RedirectRefused(aiohttp.ClientError):
    """A signalling endpoint answered with a redirect; browsers do not follow those."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


async def _refuse_redirect(
    session: aiohttp.ClientSession,
    context: object,
    params: aiohttp.TraceRequestRedirectParams,
) -> None:
    params.response.close()
    raise RedirectRefused(params.response.status)


def no_redirects() -> aiohttp.TraceConfig:
    """For the signalling session: a redirect fails the request instead of being followed.

    A browser's WebSocket does not follow redirects, and following them would
    let a server send the probe (and a token in its URL) anywhere.
    """
    config = aiohttp.TraceConfig()
    config.on_request_redirect.append(_refuse_redirect)
    return config


def _check_same_host(url_text: str, origin: str) -> None:
    """Stay on the server's host: a URL probed on demand must not lead elsewhere."""
    url, home = URL(url_text), URL(origin)
    if (url.host or "").lower() != (home.host or "").lower():
        raise XmppError(
            Reason.PROTOCOL_ERROR,
            f"config.js sends signalling to another host ({url.host}); "
            "a server probed by URL is probed on its own host only",
        )


def _connect_error(exc: aiohttp.ClientError, url: URL, what: str) -> XmppError:
    """An aiohttp connection failure as a reason an operator can act on."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        message = getattr(exc.certificate_error, "verify_message", "") or "not trusted"
        return XmppError(Reason.TLS_UNTRUSTED, f"certificate: {message}")
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return XmppError(Reason.TLS_ERROR, "TLS handshake failed")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return XmppError(Reason.DNS_ERROR, f"cannot resolve {url.host}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        reason = Reason.CONNECT_REFUSED if refused else Reason.CONNECT_ERROR
        return XmppError(reason, f"cannot connect to {url.host}:{url.port}")
    # Never the exception's text: aiohttp puts the URL in it, with the token.
    return XmppError(Reason.CONNECTION_CLOSED, f"{what} failed: {type(exc).__name__}")


class _WebSocket:
    """RFC 7395: one XML element per WebSocket message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        url_text: str,
        query: dict[str, str],
        origin: str,
        settings: XmppSettings,
    ) -> _WebSocket:
        url = URL(url_text)
        try:
            ws = await session.ws_connect(
                url.update_query(query),
                protocols=("xmpp",),
                origin=origin,
                headers={"User-Agent": settings.user_agent},
                max_msg_size=MAX_FRAME,
                ssl=(settings.ssl_context or True) if url.scheme == "wss" else False,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise XmppError(
                Reason.WS_UPGRADE_REFUSED,
                f"WebSocket upgrade refused: HTTP {exc.status} {exc.message}"[:200],
            ) from None
        except RedirectRefused as exc:
            raise XmppError(
                Reason.WS_UPGRADE_REFUSED,
                f"WebSocket upgrade answered with a redirect (HTTP {exc.status}), "
                "which browsers do not follow",
            ) from None
        except aiohttp.ClientError as exc:
            raise _connect_error(exc, url, "WebSocket") from None
        return cls(ws)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def open(self, to: str, restart: bool) -> None:
        await self.send(f'<open xmlns="{NS_FRAMING}" to="{_esc(to)}" version="1.0"/>')
        while (await self.recv()).tag != _q(NS_FRAMING, "open"):
            pass

    async def send(self, xml: str) -> None:
        try:
            await self.ws.send_str(xml)
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise XmppError(Reason.CONNECTION_CLOSED, f"cannot send: {exc}") from None

    async def recv(self) -> Element:
        """The next frame as an element; stream errors and closes raise."""
        msg = await self.ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            elem = _parse_frame(msg.data)
            if elem.tag == _q(NS_FRAMING, "close"):
                raise XmppError(Reason.CONNECTION_CLOSED, "the server closed the stream")
            return elem
        if msg.type is aiohttp.WSMsgType.ERROR:
            detail = str(msg.data)[:120] if msg.data else "WebSocket error"
            if "too big" in detail.lower() or "message size" in detail.lower():
                raise XmppError(Reason.XML_ERROR, f"frame too large: {detail}")
            raise XmppError(Reason.CONNECTION_CLOSED, f"WebSocket error: {detail}")
        if msg.type is aiohttp.WSMsgType.BINARY:
            raise XmppError(Reason.XML_ERROR, "binary frame on an XMPP stream")
        code = self.ws.close_code
        raise XmppError(Reason.CONNECTION_CLOSED, f"the WebSocket was closed (code {code})")

    async def close_stream(self) -> None:
        await self.send(f'<close xmlns="{NS_FRAMING}"/>')
        while True:  # until the server closes its side (recv raises)
            await self.recv()

    async def abort(self) -> None:
        # aiohttp waits for the server's close frame; a server that never sends
        # one must not hold the probe: on the timeout aiohttp drops the socket.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await self.ws.close()


class _Bosh:
    """XEP-0124/XEP-0206: XMPP over HTTP long polling, one request at a time."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url_text: str,
        query: dict[str, str],
        origin: str,
        settings: XmppSettings,
    ) -> None:
        self.session = session
        self.url = URL(url_text).update_query(query)
        self.headers = {
            "User-Agent": settings.user_agent,
            "Origin": origin,
            "Content-Type": "text/xml; charset=utf-8",
        }
        self.ssl: ssl.SSLContext | bool = (
            (settings.ssl_context or True) if self.url.scheme == "https" else False
        )
        self.rid = secrets.randbelow(2**40) + 2**20
        self.sid: str | None = None
        self.domain = ""
        self.inbox: deque[Element] = deque()
        self.closed = False

    async def post(self, attrs: str, payload: str = "") -> None:
        self.rid += 1
        sid = f' sid="{_esc(self.sid)}"' if self.sid else ""
        body = (
            f'<body xmlns="{NS_HTTPBIND}" xmlns:xmpp="{NS_XBOSH}" rid="{self.rid}"{sid} {attrs}>'
            f"{payload}</body>"
        )
        try:
            async with self.session.post(
                self.url,
                data=body.encode(),
                headers=self.headers,
                ssl=self.ssl,
                allow_redirects=False,
            ) as resp:
                if resp.status != 200:
                    raise XmppError(Reason.HTTP_STATUS, f"BOSH request answered HTTP {resp.status}")
                data = b""
                while len(data) <= MAX_FRAME:
                    chunk = await resp.content.read(MAX_FRAME + 1 - len(data))
                    if not chunk:
                        break
                    data += chunk
        except aiohttp.ClientError as exc:
            raise _connect_error(exc, self.url, "BOSH") from None
        answer = _parse_frame(data)
        if answer.tag != _q(NS_HTTPBIND, "body"):
            raise XmppError(Reason.XML_ERROR, "BOSH answer is not a <body>")
        if answer.get("type") == "terminate":
            self.closed = True
            condition = answer.get("condition", "")[:64]
            raise XmppError(Reason.STREAM_ERROR, f"BOSH session ended: {condition}".strip())
        if self.sid is None:
            new_sid = answer.get("sid")
            if not new_sid or len(new_sid) > 128:
                raise XmppError(Reason.XML_ERROR, "BOSH answer without a session id")
            self.sid = new_sid
        for child in answer:
            if child.tag == _q(NS_STREAMS, "error"):
                condition = _condition(child, NS_STREAM_ERRORS)
                text = _error_text(child, NS_STREAM_ERRORS)
                raise XmppError(Reason.STREAM_ERROR, f"stream error {condition} {text}".strip())
            self.inbox.append(child)

    async def open(self, to: str, restart: bool) -> None:
        self.domain = to
        if self.sid is None:
            await self.post(
                f'to="{_esc(to)}" xml:lang="en" wait="10" hold="1" ver="1.6" '
                'xmpp:version="1.0" content="text/xml; charset=utf-8"'
            )
        else:
            await self.post(f'to="{_esc(to)}" xml:lang="en" xmpp:restart="true"')

    async def send(self, xml: str) -> None:
        await self.post("", xml)

    async def recv(self) -> Element:
        while not self.inbox:
            await self.post("")  # an empty request: the server answers when it has data
        return self.inbox.popleft()

    async def close_stream(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(XmppError):
                await self.post('type="terminate"')

    async def abort(self) -> None:
        self.closed = True


_JOIN_ERRORS: Final = {
    "registration-required": Reason.LOBBY,
    "service-unavailable": Reason.ROOM_FULL,
    "not-authorized": Reason.PASSWORD_REQUIRED,
}


def _is_presence(elem: Element) -> bool:
    return elem.tag == _q(NS_CLIENT, "presence")


def _join_error(error: Element | None) -> XmppError:
    condition = _condition(error)
    text = _error_text(error)
    if error is not None and any(c.tag.endswith("}lobbyroom") for c in error.iter()):
        return XmppError(Reason.LOBBY, f"the room has a lobby ({condition})")
    if "room creation is restricted" in text.lower():
        return XmppError(
            Reason.ROOM_CREATION_RESTRICTED,
            "join refused: Room creation is restricted (focus has not created the room)",
        )
    if "wait" in text.lower() and "host" in text.lower():
        return XmppError(Reason.WAIT_FOR_HOST, f"join refused: {text}")
    reason = _JOIN_ERRORS.get(condition, Reason.JOIN_REFUSED)
    return XmppError(reason, f"join refused: {condition} {text}".strip())


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
    ladder = _Ladder(
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
            except XmppError as exc:
                if ladder.bosh or not facts.bosh:
                    raise
                # A proxy that does not pass WebSockets is common: try BOSH.
                note = f"over BOSH; the WebSocket failed: {exc.detail}"
                ladder.url, ladder.bosh = facts.bosh, True
                await ladder.upgrade()
            await ladder.login()
            await ladder.ping()
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
    except XmppError as exc:
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


def _phases(ladder: _Ladder) -> tuple[Phase, ...]:
    return tuple(Phase(name, ladder.phases[name]) for name in PHASES if name in ladder.phases)


def skipped_checks(
    settings: XmppSettings, failed: str, done: frozenset[Check] = frozenset()
) -> tuple[CheckResult, ...]:
    """'skipped' results for the enabled signalling checks not in ``done``."""
    wanted = [Check.SIGNALLING]
    wanted += [Check.FOCUS] if settings.focus else []
    wanted += [Check.MUC] if settings.join else []
    return tuple(
        CheckResult(c, Reason.SKIPPED, f"not tried: {failed} failed")
        for c in wanted
        if c not in done
    )
