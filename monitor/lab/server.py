"""A simulated Jitsi deployment that behaves like the real one on the wire.

One ``LabServer`` is one deployment on a loopback port: the web frontend
(``/``, ``/config.js`` in any of the three shapes, ``/external_api.js``),
Prosody's ``/http-bind`` answer, and XMPP over WebSocket on
``/xmpp-websocket`` with anonymous login, resource binding, ping, a focus
that creates rooms, and a MUC where only focus creates rooms and the first
member becomes owner (jicofo's auto-owner).

Faults can be injected per server: added latency and jitter, 5xx answers,
hangs, refused connections (the port closes), stream errors, focus down or
silent, and (for TLS servers) an expired certificate.
"""

from __future__ import annotations

import asyncio
import html
import random
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args
from xml.etree.ElementTree import Element

from aiohttp import WSMsgType, web
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from monitor.lab.certs import LabCA
from monitor.lab.media import EXTDISCO, LabTurn, answer
from monitor.lab.tokens import TokenPolicy, TokenRejected

__all__ = ["FAULTS", "MODERATION", "SHAPES", "LabOptions", "LabServer"]

Fault = Literal[
    "none",
    "refuse",
    "http_500",
    "hang",
    "stream_error",
    "focus_down",
    "focus_silent",
    "expired_cert",
]
FAULTS: Final[tuple[str, ...]] = get_args(Fault)
Shape = Literal["object", "ssi", "assignments"]
SHAPES: Final[tuple[str, ...]] = get_args(Shape)
# Who becomes moderator: jicofo's auto-owner (first participant), jicofo with
# JWT authority (every token user), or the token-moderation plugin (the
# token's top-level "moderator" claim).
Moderation = Literal["auto_owner", "token_users_owner", "token_moderation"]
MODERATION: Final[tuple[str, ...]] = get_args(Moderation)

NS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
NS_CLIENT: Final = "jabber:client"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_FOCUS: Final = "http://jitsi.org/protocol/focus"
NS_MUC: Final = "http://jabber.org/protocol/muc"
NS_MUC_USER: Final = "http://jabber.org/protocol/muc#user"
NS_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"

EXTERNAL_API: Final = (
    "/* jitsi-monitor lab */\n"
    "function JitsiMeetExternalAPI(domain, options) { this.domain = domain; }\n"
)


@dataclass
class LabOptions:
    """How one lab server behaves."""

    domain: str = "meet.lab"
    shape: Shape = "object"
    disable_iframe_api: bool = False
    latency: float = 0.0
    jitter: float = 0.0
    fault: Fault = "none"
    tls: bool = False
    # With a policy the server requires tokens, as authentication = "token".
    tokens: TokenPolicy | None = None
    moderation: Moderation = "auto_owner"
    # A misconfigured deployment: focus answers ready but never joins, and
    # the MUC lets anyone create rooms (the creator becomes owner).
    focus_joins: bool = True
    restrict_room_creation: bool = True
    # The <service/> elements of its XEP-0215 answer (None: it has no such service).
    services: str | None = None
    # Run a simulated STUN/TURN server and announce it (monitor.lab.media.LabTurn).
    media: bool = False
    # Seconds before each answer to a services query (a slow external-services module).
    services_delay: float = 0.0


@dataclass
class _Room:
    occupants: dict[str, tuple[str, str]] = field(default_factory=dict)  # nick -> (aff, role)


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _a(value: str) -> str:
    return html.escape(value, quote=True)


class LabServer:
    """One simulated deployment; ``start()`` it on a loopback port."""

    def __init__(self, options: LabOptions | None = None, ca: LabCA | None = None) -> None:
        self.options = options or LabOptions()
        # TLS servers share a CA (one ca_file for the monitor to trust).
        self.ca = ca if ca is not None or not self.options.tls else LabCA()
        self.secret_file: Path | None = None
        if self.options.tokens is not None:
            # The monitor reads the secret from a file, as it would in production.
            folder = Path(tempfile.mkdtemp(prefix="jitsi-lab-jwt-"))
            self.secret_file = folder / "jwt.secret"
            self.secret_file.touch(mode=0o600)
            self.secret_file.write_text(self.options.tokens.secret)
        self.rooms: dict[str, _Room] = {}
        self.sessions = 0
        # Occupants that left with an unavailable presence (not by dropping the stream).
        self.leaves: list[str] = []
        self.port = 0
        # The loopback address it listens on (start's host): in its URL, in
        # the config.js it serves and when it listens again after a fault.
        self.host = "127.0.0.1"
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.turn: LabTurn | None = None

    # -- lifecycle ----------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.options.tls else "http"
        return f"{scheme}://{self.host}:{self.port}/"

    @property
    def websocket(self) -> str:
        scheme = "wss" if self.options.tls else "ws"
        return f"{scheme}://{self.host}:{self.port}/xmpp-websocket"

    @property
    def muc(self) -> str:
        return f"conference.{self.options.domain}"

    @property
    def focus(self) -> str:
        return f"focus.{self.options.domain}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/config.js", self._config_js)
        app.router.add_get("/external_api.js", self._external_api)
        app.router.add_get("/http-bind", self._http_bind)
        app.router.add_get("/xmpp-websocket", self._websocket)
        return app

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        # A short shutdown timeout: a "hang" fault holds requests open.
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        if self.options.media and self.turn is None:
            self.turn = await LabTurn.start(host=host)
            self.options.services = self.turn.services()
        await self._listen(host, port)
        if self.options.fault == "refuse":
            # Listen once for a port to name, then close it: connections are refused.
            assert self._site is not None
            await self._site.stop()
            self._site = None

    async def _listen(self, host: str, port: int) -> None:
        assert self._runner is not None
        context = None
        if self.ca is not None:
            context = self.ca.server_context(
                expired=self.options.fault == "expired_cert", host=host
            )
        self._site = web.TCPSite(self._runner, host, port, reuse_address=True, ssl_context=context)
        await self._site.start()
        self.port = self._runner.addresses[-1][1]

    async def set_fault(self, fault: Fault) -> None:
        """Change the fault; ``refuse`` closes the port, leaving it opens it again."""
        old, self.options.fault = self.options.fault, fault
        # The certificate is chosen when listening: switching it means listening anew.
        recert = "expired_cert" in (old, fault) and old != fault
        if (fault == "refuse" or recert) and self._site is not None:
            await self._site.stop()
            self._site = None
        if fault != "refuse" and self._site is None and self._runner is not None:
            await self._listen(self.host, self.port)

    async def stop(self) -> None:
        if self.turn is not None:
            self.turn.close()
            self.turn = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.secret_file is not None:
            shutil.rmtree(self.secret_file.parent, ignore_errors=True)
            self.secret_file = None

    async def _delay(self) -> None:
        o = self.options
        pause = o.latency + (random.uniform(0, o.jitter) if o.jitter else 0.0)
        if pause > 0:
            await asyncio.sleep(pause)
        if o.fault == "hang":
            await asyncio.sleep(3600)

    # -- web ----------------------------------------------------------------
    async def _http(self, text: str, content_type: str) -> web.Response:
        await self._delay()
        if self.options.fault == "http_500":
            return web.Response(status=500, text="lab: injected server error")
        return web.Response(text=text, content_type=content_type)

    async def _index(self, _: web.Request) -> web.Response:
        return await self._http("<html><title>Jitsi Meet (lab)</title></html>", "text/html")

    async def _config_js(self, _: web.Request) -> web.Response:
        return await self._http(self.config_js(), "application/javascript")

    async def _external_api(self, _: web.Request) -> web.Response:
        return await self._http(EXTERNAL_API, "application/javascript")

    async def _http_bind(self, _: web.Request) -> web.Response:
        return await self._http(
            "<html><body><p>It works! Now point your BOSH client to this URL "
            "to connect to Prosody.</p></body></html>",
            "text/html",
        )

    def config_js(self) -> str:
        """config.js in the configured shape, pointing back at this server."""
        o = self.options
        ws = self.websocket
        base = self.url
        ws_base = ws.removesuffix("xmpp-websocket")
        iframe = "true" if o.disable_iframe_api else "false"
        if o.shape == "assignments":
            return (
                "var config = {};\n"
                "if (!config.hasOwnProperty('hosts')) config.hosts = {};\n"
                f"config.hosts.domain = '{o.domain}';\n"
                f"config.hosts.muc = 'conference.{o.domain}';\n"
                'var subdir = \'<!--# echo var="subdir" default="" -->\';\n'
                "if (subdir.startsWith('<!--')) { subdir = ''; }\n"
                "config.bosh = '/' + subdir + 'http-bind';\n"
                f"config.websocket = '{ws_base}' + subdir + 'xmpp-websocket';\n"
                f"config.disableIframeAPI = {iframe};\n"
            )
        if o.shape == "ssi":
            return (
                'var subdir = \'<!--# echo var="subdir" default="" -->\';\n'
                "if (subdir.startsWith('<!--')) { subdir = ''; }\n"
                "var config = {\n"
                f"    hosts: {{ domain: '{o.domain}', muc: 'conference.' + '{o.domain}' }},\n"
                f"    bosh: '{base}' + subdir + 'http-bind',\n"
                f"    websocket: '{ws_base}' + subdir + 'xmpp-websocket',\n"
                f"    disableIframeAPI: {iframe},\n"
                "};\n"
            )
        return (
            "var config = {\n"
            f"    hosts: {{ domain: '{o.domain}', muc: 'conference.{o.domain}' }},\n"
            "    bosh: '/http-bind',\n"
            f"    websocket: '{ws}',\n"
            f"    disableIframeAPI: {iframe},\n"
            "};\n"
        )

    # -- signalling -----------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
        ]
        if "xmpp" not in protocols:  # as Prosody answers
            return web.Response(status=501, text="Not Implemented: no xmpp sub-protocol")
        await self._delay()
        if self.options.fault == "http_500":
            return web.Response(status=500, text="lab: injected server error")
        ws = web.WebSocketResponse(protocols=("xmpp",), max_msg_size=64 * 1024)
        await ws.prepare(request)
        self.sessions += 1
        session = _XmppSession(self, ws, request.query.get("token"))
        try:
            await session.run()
        except ConnectionResetError:
            pass  # the client went away mid-answer (or a fault cut it off)
        finally:
            session.leave_all()
            self.sessions -= 1
        return ws


class _XmppSession:
    """One client's stream: login, bind, ping, focus, MUC."""

    def __init__(self, lab: LabServer, ws: web.WebSocketResponse, token: str | None) -> None:
        self.lab = lab
        self.ws = ws
        self.token = token
        self.claims: dict[str, Any] | None = None
        self.authenticated = False
        self.jid = ""
        self.joined: set[tuple[str, str]] = set()  # (room jid, nick)
        self.requested: set[str] = set()  # rooms this stream asked focus for

    async def send(self, xml: str) -> None:
        await self.lab._delay()
        if not self.ws.closed:
            await self.ws.send_str(xml)

    async def run(self) -> None:
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT:
                break
            try:
                elem = fromstring(msg.data, forbid_dtd=True)
            except (ParseError, DefusedXmlException):
                await self.send(
                    "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                    "<not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                )
                break
            if not await self.handle(elem):
                break
        await self.ws.close()

    async def handle(self, elem: Element) -> bool:
        """Answer one frame; False ends the stream."""
        tag = elem.tag
        domain = self.lab.options.domain
        if tag == _q(NS_FRAMING, "open"):
            if self.lab.options.fault == "stream_error":
                await self.send(
                    "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                    "<internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>lab: injected</text>"
                    "</stream:error>"
                )
                return False
            if elem.get("to") != domain:
                await self.send(
                    "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                    "<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
                )
                return False
            await self.send(
                f"<open xmlns='{NS_FRAMING}' from='{_a(domain)}' id='{secrets.token_hex(8)}' "
                "version='1.0' xml:lang='en'/>"
            )
            if self.authenticated:
                features = f"<bind xmlns='{NS_BIND}'/>"
            else:
                features = (
                    f"<mechanisms xmlns='{NS_SASL}'><mechanism>ANONYMOUS</mechanism></mechanisms>"
                )
            await self.send(
                "<stream:features xmlns:stream='http://etherx.jabber.org/streams' "
                f"xmlns='{NS_CLIENT}'>{features}</stream:features>"
            )
            return True
        if tag == _q(NS_SASL, "auth"):
            policy = self.lab.options.tokens
            if policy is not None:
                try:
                    self.claims = policy.check(self.token)
                except TokenRejected as exc:
                    await self.send(
                        f"<failure xmlns='{NS_SASL}'><not-allowed/>"
                        f"<text>{html.escape(str(exc), quote=True)}</text></failure>"
                    )
                    return True
            self.authenticated = True
            await self.send(f"<success xmlns='{NS_SASL}'/>")
            return True
        if tag == _q(NS_FRAMING, "close"):
            await self.send(f"<close xmlns='{NS_FRAMING}'/>")
            return False
        if not self.authenticated:
            await self.send(
                "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
            )
            return False
        if tag in ("iq", "presence", "message"):  # as Prosody: stanzas need jabber:client
            await self.send(
                "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
                "<unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                "</stream:error>"
            )
            return False
        if tag == _q(NS_CLIENT, "iq"):
            await self.iq(elem)
        elif tag == _q(NS_CLIENT, "presence"):
            await self.presence(elem)
        return True

    async def iq(self, iq: Element) -> None:
        iq_id = _a(iq.get("id", ""))
        to = iq.get("to", "")
        if iq.find(_q(NS_BIND, "bind")) is not None:
            self.jid = f"{secrets.token_hex(8)}@{self.lab.options.domain}/{secrets.token_hex(4)}"
            await self.send(
                f"<iq xmlns='{NS_CLIENT}' type='result' id='{iq_id}'>"
                f"<bind xmlns='{NS_BIND}'><jid>{_a(self.jid)}</jid></bind></iq>"
            )
            return
        conference = iq.find(_q(NS_FOCUS, "conference"))
        if conference is not None and to == self.lab.focus:
            await self.conference(iq_id, conference.get("room", ""))
            return
        asked = next((ns for ns in EXTDISCO if iq.find(_q(ns, "services")) is not None), None)
        if asked is not None:  # XEP-0215: the media services (monitor.lab.media)
            await asyncio.sleep(self.lab.options.services_delay)
            await self.send(answer(iq.get("id", ""), to, asked, self.lab.options.services))
            return
        # ping and anything else: an empty result from the server
        await self.send(f"<iq xmlns='{NS_CLIENT}' type='result' id='{iq_id}' from='{_a(to)}'/>")

    async def conference(self, iq_id: str, room: str) -> None:
        fault = self.lab.options.fault
        if fault == "focus_silent":
            return  # jicofo hung: no answer at all
        if fault == "focus_down":
            await self.send(
                f"<iq xmlns='{NS_CLIENT}' type='error' id='{iq_id}' from='{self.lab.focus}'>"
                f"<error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
            )
            return
        if room.endswith(f"@{self.lab.muc}") and self.lab.options.focus_joins:
            lab_room = self.lab.rooms.setdefault(room, _Room())
            lab_room.occupants.setdefault("focus", ("owner", "moderator"))
            self.requested.add(room)
        await self.send(
            f"<iq xmlns='{NS_CLIENT}' type='result' id='{iq_id}' from='{self.lab.focus}'>"
            f"<conference xmlns='{NS_FOCUS}' ready='true' room='{_a(room)}'/></iq>"
        )

    async def presence(self, presence: Element) -> None:
        to = presence.get("to", "")
        room_jid, _, nick = to.partition("/")
        if not nick or not room_jid.endswith(f"@{self.lab.muc}"):
            return
        if presence.get("type") == "unavailable":
            if (room_jid, nick) not in self.joined:
                return
            self.leave(room_jid, nick)
            self.lab.leaves.append(to)
            await self.send(
                f"<presence xmlns='{NS_CLIENT}' from='{_a(to)}' type='unavailable'>"
                f"<x xmlns='{NS_MUC_USER}'><item affiliation='none' role='none'/>"
                "<status code='110'/></x></presence>"
            )
            return
        room = self.lab.rooms.get(room_jid)
        created = False
        if room is None and not self.lab.options.restrict_room_creation:
            room, created = self.lab.rooms.setdefault(room_jid, _Room()), True
        if room is None:
            await self.send(
                f"<presence xmlns='{NS_CLIENT}' from='{_a(to)}' type='error'>"
                f"<error type='cancel'><not-allowed xmlns='{NS_STANZAS}'/>"
                f"<text xmlns='{NS_STANZAS}'>Room creation is restricted</text></error></presence>"
            )
            return
        if self.claims is not None:
            wanted = self.claims["room"]
            if wanted != "*" and wanted.lower() != room_jid.split("@", 1)[0].lower():
                await self.send(
                    f"<presence xmlns='{NS_CLIENT}' from='{_a(to)}' type='error'>"
                    f"<error type='cancel'><not-allowed xmlns='{NS_STANZAS}'/>"
                    f"<text xmlns='{NS_STANZAS}'>Room and token mismatched</text></error>"
                    "</presence>"
                )
                return
        # Prosody makes a room's creator owner before any plugin sees it.
        affiliation, role = ("owner", "moderator") if created else self.role_for(room)
        room.occupants[nick] = (affiliation, role)
        self.joined.add((room_jid, nick))
        if "focus" in room.occupants:
            await self.send(
                f"<presence xmlns='{NS_CLIENT}' from='{_a(room_jid)}/focus'>"
                f"<x xmlns='{NS_MUC_USER}'><item affiliation='owner' role='moderator'/></x>"
                "</presence>"
            )
        status = "<status code='110'/>" + ("<status code='201'/>" if created else "")
        await self.send(
            f"<presence xmlns='{NS_CLIENT}' from='{_a(to)}'>"
            f"<x xmlns='{NS_MUC_USER}'><item affiliation='{affiliation}' role='{role}'/>"
            f"{status}</x></presence>"
        )

    def role_for(self, room: _Room) -> tuple[str, str]:
        """(affiliation, role) of a participant joining ``room`` now."""
        owner, member = ("owner", "moderator"), ("member", "participant")
        mode = self.lab.options.moderation
        if self.claims is not None and mode == "token_moderation":
            # mod_token_moderation: only the top-level boolean claim counts.
            return owner if self.claims.get("moderator") is True else member
        if self.claims is not None and mode == "token_users_owner":
            return owner  # jicofo grants owner to every authenticated member
        # jicofo's auto-owner: the first participant besides focus is owner.
        return owner if len(room.occupants) <= 1 else ("none", "participant")

    def leave(self, room_jid: str, nick: str) -> None:
        self.joined.discard((room_jid, nick))
        room = self.lab.rooms.get(room_jid)
        if room is None:
            return
        room.occupants.pop(nick, None)
        if set(room.occupants) <= {"focus"}:  # focus leaves an empty room: it is destroyed
            del self.lab.rooms[room_jid]

    def leave_all(self) -> None:
        """A dropped stream takes its occupants out, as Prosody does.

        A conference this stream asked for that nobody joined is given up, as
        jicofo gives up a conference that never starts.
        """
        for room_jid, nick in list(self.joined):
            self.leave(room_jid, nick)
        for room_jid in self.requested:
            room = self.lab.rooms.get(room_jid)
            if room is not None and set(room.occupants) <= {"focus"}:
                del self.lab.rooms[room_jid]
