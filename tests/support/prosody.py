"""A real Prosody (Debian's package), configured the way Jitsi configures it, and a focus.

``Prosody`` starts an instance on free loopback ports with a temporary data
directory: an anonymous virtual host with the ``websocket`` and ``bosh``
modules, a virtual host that requires a password, and a MUC component with
``restrict_room_creation = true`` (only focus creates rooms), as in a Jitsi
deployment.

``Focus`` stands in for jicofo: an XMPP component (XEP-0114) of that
Prosody that answers a conference request by joining the room as ``focus``
and replying ``ready="true"``, and leaves a room when the last participant
has gone, so the room is destroyed as jicofo's would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element, XMLPullParser
from xml.sax.saxutils import quoteattr

DOMAIN = "meet.test"
SECURE = "secure.test"
# Token hosts: TOKEN without the token-moderation module, TOKEN_MOD with it,
# OPEN with the token-moderation module and allow_empty_token = true.
TOKEN = "token.test"
TOKEN_MOD = "tokenmod.test"
OPEN = "open.test"
# A token host whose MUC verifies the token's sub (enable_domain_verification).
VERIFIED = "verified.test"
APP_ID = "test-lms"
APP_SECRET = "prosody-test-secret-0123456789abcdef"
PLUGINS = Path(__file__).resolve().parent / "prosody_plugins"
MUC = f"conference.{DOMAIN}"
FOCUS = f"focus.{DOMAIN}"
FOCUS_JID = f"focus@{FOCUS}"
SECRET = "focus-secret-for-tests"

NS_COMPONENT = "jabber:component:accept"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_FOCUS = "http://jitsi.org/protocol/focus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """
-- written by the tests; see tests/support/prosody.py
daemonize = false
run_as_root = true
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
component_ports = {{ {component} }}
component_interface = "127.0.0.1"
http_ports = {{ {http} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ }}
admins = {{ "{focus_jid}" }}
plugin_paths = {{ "{plugins}" }}
modules_enabled = {{ "disco", "ping", "saslauth", "bosh", "websocket" }}
modules_disabled = {{ "posix", "s2s", "tls" }}
consider_websocket_secure = true
consider_bosh_secure = true
cross_domain_websocket = true
cross_domain_bosh = true
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{dir}/prosody.log" }} }}

VirtualHost "{domain}"
    authentication = "anonymous"

VirtualHost "{secure}"
    authentication = "internal_hashed"

Component "{muc}" "muc"
    restrict_room_creation = true
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "{focus}"
    component_secret = "{secret}"

VirtualHost "{token}"
    authentication = "test_token"
    app_id = "{app_id}"
    app_secret = "{app_secret}"

Component "conference.{token}" "muc"
    modules_enabled = {{ "test_token_room" }}
    restrict_room_creation = true
    muc_room_locking = false
    muc_room_default_public_jids = true

VirtualHost "{token_mod}"
    authentication = "test_token"
    app_id = "{app_id}"
    app_secret = "{app_secret}"

Component "conference.{token_mod}" "muc"
    modules_enabled = {{ "test_token_room", "test_token_moderation" }}
    restrict_room_creation = true
    muc_room_locking = false
    muc_room_default_public_jids = true

VirtualHost "{open}"
    authentication = "test_token"
    app_id = "{app_id}"
    app_secret = "{app_secret}"
    allow_empty_token = true

VirtualHost "{verified}"
    authentication = "test_token"
    app_id = "{app_id}"
    app_secret = "{app_secret}"

Component "conference.{verified}" "muc"
    modules_enabled = {{ "test_token_room", "test_token_moderation" }}
    enable_domain_verification = true
    muc_mapper_domain_base = "{verified}"
    restrict_room_creation = true
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "conference.{open}" "muc"
    modules_enabled = {{ "test_token_room", "test_token_moderation" }}
    restrict_room_creation = true
    muc_room_locking = false
    muc_room_default_public_jids = true
"""


@dataclass
class Prosody:
    """One Prosody process on loopback."""

    dir: Path
    http: int = field(default_factory=free_port)
    c2s: int = field(default_factory=free_port)
    component: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # More config (virtual hosts) appended to CONFIG, e.g. the media tests' TURN hosts.
    extra: str = ""

    @property
    def websocket(self) -> str:
        return f"ws://127.0.0.1:{self.http}/xmpp-websocket"

    @property
    def bosh(self) -> str:
        return f"http://127.0.0.1:{self.http}/http-bind"

    def start(self) -> None:
        binary = shutil.which("prosody")
        assert binary, "prosody is missing: scripts/check installs it (Debian package prosody)"
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        config = self.dir / "prosody.cfg.lua"
        config.write_text(
            CONFIG.format(
                dir=self.dir,
                c2s=self.c2s,
                component=self.component,
                http=self.http,
                domain=DOMAIN,
                secure=SECURE,
                muc=MUC,
                focus=FOCUS,
                focus_jid=FOCUS_JID,
                secret=SECRET,
                token=TOKEN,
                token_mod=TOKEN_MOD,
                open=OPEN,
                verified=VERIFIED,
                app_id=APP_ID,
                app_secret=APP_SECRET,
                plugins=PLUGINS,
            )
            + self.extra
        )
        env = dict(os.environ, PROSODY_CONFIG=str(config))
        with (self.dir / "stderr.log").open("wb") as stderr:
            self.proc = subprocess.Popen(
                [binary, "--config", str(config)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody exited at start:\n{self.log()}")
            if all(_listening(p) for p in (self.http, self.c2s, self.component)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"prosody did not start listening:\n{self.log()}")

    def log(self) -> str:
        parts = []
        for name in ("prosody.log", "stderr.log"):
            path = self.dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def counts(self) -> LogCounts:
        """What Prosody's log says so far about streams and joins (see LogCounts)."""
        text = (self.dir / "prosody.log").read_text(errors="replace")
        return LogCounts(
            websockets=text.count("\tClient connected"),
            bosh_opened=set(re.findall(r"New BOSH session, assigned it sid '([^']+)'", text)),
            bosh_closed=set(re.findall(r"bosh(\S+)\s+info\s+BOSH client disconnected", text)),
            joins=text.count("join attempt: "),
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass(frozen=True)
class LogCounts:
    """Counted in Prosody's log (level info): WebSocket streams opened (mod_c2s's
    "Client connected"), BOSH sessions opened (mod_bosh's "New BOSH session,
    assigned it sid") and ended by the client's terminate or a stream close
    (mod_bosh's "BOSH client disconnected", which a session dropped for
    inactivity never logs), and joins tried on the token MUCs (the test
    module's "join attempt")."""

    websockets: int
    bosh_opened: set[str]
    bosh_closed: set[str]
    joins: int

    @property
    def streams(self) -> int:
        return self.websockets + len(self.bosh_opened)

    def __sub__(self, before: LogCounts) -> LogCounts:
        return LogCounts(
            self.websockets - before.websockets,
            self.bosh_opened - before.bosh_opened,
            self.bosh_closed - before.bosh_closed,
            self.joins - before.joins,
        )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


@dataclass
class Focus:
    """A stand-in for jicofo, connected to Prosody as the component ``focus.meet.test``."""

    port: int
    ready: bool = True
    # As jicofo with JWT authority: grant owner to every participant that joins.
    grant_owner: bool = False
    requests: list[str] = field(default_factory=list)
    joined_rooms: set[str] = field(default_factory=set)
    occupants: dict[str, set[str]] = field(default_factory=dict)
    seen_leaves: list[str] = field(default_factory=list)
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None
    _pending: dict[str, asyncio.Future[Element]] = field(default_factory=dict)
    _ids: int = 0

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writer = writer
        parser = XMLPullParser(events=("start", "end"))
        writer.write(
            f"<stream:stream xmlns='{NS_COMPONENT}' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{FOCUS}'>".encode()
        )
        stream_id = None
        while stream_id is None:
            data = await reader.read(65536)
            assert data, "prosody closed the component stream"
            parser.feed(data)
            for event, elem in parser.read_events():
                if event == "start" and elem.tag.endswith("}stream"):
                    stream_id = elem.get("id")
        digest = hashlib.sha1((stream_id + SECRET).encode()).hexdigest()
        writer.write(f"<handshake>{digest}</handshake>".encode())
        depth_parser = _Stanzas(parser)
        while True:
            data = await reader.read(65536)
            assert data, "prosody refused the component handshake"
            stanzas = depth_parser.feed(data)
            if any(s.tag == _q(NS_COMPONENT, "handshake") for s in stanzas):
                break
        self._task = asyncio.create_task(self._run(reader, depth_parser))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(b"</stream:stream>")
            self._writer.close()

    def send(self, xml: str) -> None:
        assert self._writer is not None
        self._writer.write(xml.encode())

    async def iq(self, to: str, payload: str, kind: str = "get") -> Element:
        self._ids += 1
        iq_id = f"focus-{self._ids}"
        future: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        self._pending[iq_id] = future
        self.send(
            f"<iq from='{FOCUS_JID}' to={quoteattr(to)} type='{kind}' id='{iq_id}'>{payload}</iq>"
        )
        return await asyncio.wait_for(future, 5)

    async def rooms(self) -> list[str]:
        """The rooms the MUC service lists now (disco#items)."""
        answer = await self.iq(MUC, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
        return sorted(item.get("jid", "") for item in answer.iter() if item.tag.endswith("}item"))

    async def _run(self, reader: asyncio.StreamReader, stanzas: _Stanzas) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for stanza in stanzas.feed(data):
                self._handle(stanza)

    def _handle(self, stanza: Element) -> None:
        tag = stanza.tag
        if tag == _q(NS_COMPONENT, "iq"):
            iq_id = stanza.get("id", "")
            if stanza.get("type") in ("result", "error") and iq_id in self._pending:
                self._pending.pop(iq_id).set_result(stanza)
                return
            conference = stanza.find(_q(NS_FOCUS, "conference"))
            if conference is not None and stanza.get("type") == "set":
                self._conference(stanza, conference.get("room", ""))
            elif stanza.get("type") in ("get", "set"):
                sender = quoteattr(stanza.get("to", FOCUS))
                to = quoteattr(stanza.get("from", ""))
                self.send(
                    f"<iq from={sender} to={to} type='error' id={quoteattr(iq_id)}>"
                    "<error type='cancel'><service-unavailable "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                )
        elif tag == _q(NS_COMPONENT, "presence"):
            self._presence(stanza)

    def _conference(self, stanza: Element, room: str) -> None:
        self.requests.append(room)
        reply_to = stanza.get("from", "")
        iq_id = stanza.get("id", "")
        if self.ready and "@conference." in room and room not in self.joined_rooms:
            self.joined_rooms.add(room)
            self.occupants.setdefault(room, set())
            self.send(
                f"<presence from='{FOCUS_JID}/focus' to={quoteattr(room + '/focus')}>"
                "<x xmlns='http://jabber.org/protocol/muc'/></presence>"
            )
        ready = "true" if self.ready else "false"
        self.send(
            f"<iq from='{FOCUS}' to={quoteattr(reply_to)} type='result' id={quoteattr(iq_id)}>"
            f"<conference xmlns='{NS_FOCUS}' ready='{ready}' room={quoteattr(room)} "
            f"focusjid='{FOCUS_JID}'/></iq>"
        )

    def _presence(self, stanza: Element) -> None:
        sender = stanza.get("from", "")
        room, _, nick = sender.partition("/")
        if room not in self.joined_rooms or nick == "focus" or not nick:
            return
        people = self.occupants.setdefault(room, set())
        if stanza.get("type") == "unavailable":
            people.discard(nick)
            self.seen_leaves.append(sender)
            if not people:  # the last participant left: leave, and the room goes
                self.joined_rooms.discard(room)
                self.send(
                    f"<presence from='{FOCUS_JID}/focus' to={quoteattr(room + '/focus')} "
                    "type='unavailable'/>"
                )
        elif stanza.get("type") is None and nick not in people:
            people.add(nick)
            item = stanza.find(f"{{{NS_MUC_USER}}}x/{{{NS_MUC_USER}}}item")
            real = item.get("jid", "") if item is not None else ""
            if self.grant_owner and real:
                self._ids += 1
                self.send(
                    f"<iq from='{FOCUS_JID}/focus' to={quoteattr(room)} type='set' "
                    f"id='grant-{self._ids}'><query xmlns='http://jabber.org/protocol/muc#admin'>"
                    f"<item affiliation='owner' jid={quoteattr(real.split('/')[0])}/></query></iq>"
                )


class _Stanzas:
    """Collects complete top-level stanzas (depth 1 under the stream) from a pull parser."""

    def __init__(self, parser: XMLPullParser) -> None:
        self.parser = parser
        self.depth = 1  # inside <stream:stream>

    def feed(self, data: bytes) -> list[Element]:
        self.parser.feed(data)
        done = []
        for event, elem in self.parser.read_events():
            if event == "start":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    done.append(elem)
        return done


__all__ = [
    "APP_ID",
    "APP_SECRET",
    "DOMAIN",
    "FOCUS",
    "MUC",
    "OPEN",
    "SECURE",
    "TOKEN",
    "TOKEN_MOD",
    "VERIFIED",
    "Focus",
    "LogCounts",
    "Prosody",
]
