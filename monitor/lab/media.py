"""The lab's external services (XEP-0215): what a simulated server announces for its media path.

``answer`` is the lab's reply to a ``<services/>`` query; ``LabTurn`` a
simulated STUN/TURN server (UDP, relaying between its own allocations) for a
lab server with ``media=True``;
``rest_services``
builds the announcement Prosody 0.12's ``mod_turn_external`` makes
(``mod_external_services.lua`` and ``mod_turn_external.lua`` as shipped in
Debian's prosody 0.12.3: STUN and TURN over UDP, both over TCP with
``turn_external_tcp``, ``turns`` on ``turn_external_tls_port``, TURN REST
credentials with an ``expires`` timestamp); ``hostile_services`` is an
answer a hostile server could send: a huge list, bogus hosts and ports,
private addresses, overlong credentials.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import secrets
import time
from datetime import UTC, datetime

from aioice import stun

from monitor.checks.media.relay import Indication, read_indication

__all__ = ["LabTurn", "answer", "hostile_services", "rest_services"]

NS_CLIENT = "jabber:client"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
EXTDISCO = ("urn:xmpp:extdisco:2", "urn:xmpp:extdisco:1")


def _a(value: object) -> str:
    return html.escape(str(value), quote=True)


def answer(iq_id: str, to: str, ns: str, services: str | None) -> str:
    """The reply to a services query: the ``<service/>`` elements, or (None) an error
    as from a server without the external-services module."""
    if services is None:
        return (
            f"<iq xmlns='{NS_CLIENT}' type='error' id='{_a(iq_id)}' from='{_a(to)}'>"
            f"<error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
        )
    return (
        f"<iq xmlns='{NS_CLIENT}' type='result' id='{_a(iq_id)}' from='{_a(to)}'>"
        f"<services xmlns='{_a(ns)}'>{services}</services></iq>"
    )


def rest_services(
    host: str,
    port: int,
    secret: str,
    *,
    tcp: bool = True,
    tls_port: int | None = None,
    ttl: float = 86400,
) -> str:
    """What mod_turn_external announces for these settings, credentials included."""
    expires = int(time.time() + ttl)
    username = str(expires)
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    password = base64.b64encode(digest).decode()
    stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    creds = f" username='{_a(username)}' password='{_a(password)}' expires='{stamp}' restricted='1'"
    items = [("stun", "udp", port, ""), ("turn", "udp", port, creds)]
    if tcp:
        items += [("stun", "tcp", port, ""), ("turn", "tcp", port, creds)]
    if tls_port is not None:
        items.append(("turns", "tcp", tls_port, creds))
    return "".join(
        f"<service type='{kind}' transport='{transport}' host='{_a(host)}' port='{p}'{extra}/>"
        for kind, transport, p, extra in items
    )


def hostile_services(count: int = 3000) -> str:
    """A huge answer (some 230 kB, under the client's frame limit) with every kind of bad
    entry, then ``count`` services that look fine but do not resolve.

    Its non-public services are loopback addresses other than the lab's own
    (127.0.0.2, 127.0.0.3), so that a monitor that wrongly probed them would
    still not send a packet off this machine."""
    bad = [
        "<service type='turn' transport='udp' host='127.0.0.2' port='3478' username='u' "
        "password='p'/>",
        "<service type='turn' transport='udp' host='127.0.0.3' port='80'/>",
        "<service type='stun' transport='udp' host='bad host!' port='3478'/>",
        "<service type='stun' transport='udp' host='a.example' port='99999'/>",
        "<service type='stun' transport='udp' host='a.example' port='-1'/>",
        "<service type='turn' transport='sctp' host='a.example' port='3478'/>",
        "<service type='ftp' transport='tcp' host='a.example' port='21'/>",
        "<service type='turns' transport='udp' host='a.example' port='5349'/>",
        "<service type='turn' transport='udp' host='a.example' port='3478' "
        f"username='{'u' * 5000}' password='p'/>",
        "<service type='stun' transport='udp' host='\u202egro.example' port='1'/>",
    ]
    filler = "<service type='stun' transport='udp' host='s{i}.stun.invalid' port='{port}'/>"
    rest = "".join(filler.format(i=i, port=1000 + i % 60000) for i in range(count))
    return "".join(bad) + rest


class LabTurn(asyncio.DatagramProtocol):
    """A simulated STUN/TURN server on loopback UDP, with TURN REST credentials.

    It answers a Binding with the mapped address; an Allocate first with
    401 and a nonce, then (with the right HMAC key) with a relayed address
    and a lifetime; a Refresh with its lifetime (0 releases the allocation);
    a CreatePermission by noting the peer's address. It relays only between
    its own allocations, with no socket of their own: a Send indication to
    another allocation's relayed address that permits the sender reaches
    that allocation's client as a Data indication (what ``turn_relay``
    checks). It is for the lab's demos and fast tests; coturn is the real one.
    """

    # Most allocations held at once (the oldest is dropped past it).
    MAX_ALLOCATIONS = 256

    REALM = "lab"

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.nonce = secrets.token_hex(8).encode()
        self.allocations = 0
        # client address -> its relayed address, and the peer addresses it permits
        self.relayed: dict[tuple[str, int], tuple[str, int]] = {}
        self.permits: dict[tuple[str, int], set[str]] = {}
        self._next_port = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.host = "127.0.0.1"  # the loopback address it listens on

    @classmethod
    async def start(cls, secret: str | None = None, host: str = "127.0.0.1") -> LabTurn:
        loop = asyncio.get_running_loop()
        server = cls(secret or secrets.token_hex(16))
        server.host = host
        transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=(host, 0))
        server.transport = transport
        server.port = transport.get_extra_info("sockname")[1]
        return server

    def services(self) -> str:
        """What the lab's XMPP server announces for it."""
        return rest_services(self.host, self.port, self.secret, tcp=False)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if self.transport is None:
            return
        if request.message_class == stun.Class.INDICATION:
            self._relay(data, addr)
            return
        if request.message_class != stun.Class.REQUEST:
            return
        answer = self._answer(request, data, addr)
        if answer is not None:
            self.transport.sendto(bytes(answer), addr)

    def _reply(self, request: stun.Message, ok: bool) -> stun.Message:
        kind = stun.Class.RESPONSE if ok else stun.Class.ERROR
        return stun.Message(request.message_method, kind, request.transaction_id)

    def _answer(
        self, request: stun.Message, data: bytes, addr: tuple[str, int]
    ) -> stun.Message | None:
        method = request.message_method
        if method == stun.Method.BINDING:
            reply = self._reply(request, True)
            reply.attributes["XOR-MAPPED-ADDRESS"] = addr
            return reply
        if method not in (stun.Method.ALLOCATE, stun.Method.REFRESH, stun.Method.CREATE_PERMISSION):
            return None
        username = request.attributes.get("USERNAME")
        key = self._key(username) if isinstance(username, str) else None
        try:
            if key is None:
                raise ValueError("no credentials")
            stun.parse_message(data, integrity_key=key)
        except ValueError:
            reply = self._reply(request, False)
            reply.attributes["ERROR-CODE"] = (401, "Unauthorized")
            reply.attributes["REALM"] = self.REALM
            reply.attributes["NONCE"] = self.nonce
            return reply
        reply = self._reply(request, True)
        if method == stun.Method.CREATE_PERMISSION:
            peer = request.attributes.get("XOR-PEER-ADDRESS")
            if addr in self.permits and isinstance(peer, tuple):
                self.permits[addr].add(peer[0])
            reply.add_message_integrity(key)
            return reply
        lifetime = min(600, int(request.attributes.get("LIFETIME", 600)))
        if method == stun.Method.ALLOCATE:
            self.allocations += 1
            reply.attributes["XOR-RELAYED-ADDRESS"] = self._allocate(addr)
            reply.attributes["XOR-MAPPED-ADDRESS"] = addr
        elif lifetime == 0:
            self.relayed.pop(addr, None)
            self.permits.pop(addr, None)
        reply.attributes["LIFETIME"] = lifetime
        reply.add_message_integrity(key)
        return reply

    def _allocate(self, client: tuple[str, int]) -> tuple[str, int]:
        """A relayed address for ``client``: a port number only, never bound."""
        if client not in self.relayed:
            if len(self.relayed) >= self.MAX_ALLOCATIONS:
                oldest = next(iter(self.relayed))
                self.relayed.pop(oldest)
                self.permits.pop(oldest, None)
            self._next_port = (self._next_port + 1) % 16384
            self.relayed[client] = (self.host, 49152 + self._next_port)
            self.permits[client] = set()
        return self.relayed[client]

    def _relay(self, data: bytes, sender: tuple[str, int]) -> None:
        """A Send indication from an allocation to another: a Data indication to its client."""
        found = read_indication(data)
        source = self.relayed.get(sender)
        if found is None or source is None or self.transport is None:
            return
        peer, payload = found
        for client, relayed in self.relayed.items():
            if relayed == peer and source[0] in self.permits.get(client, set()):
                data_indication = Indication(source, payload, stun.Method.DATA)
                self.transport.sendto(bytes(data_indication), client)
                return

    def _key(self, username: str) -> bytes | None:
        expiry = username.partition(":")[0]
        if not expiry.isdigit() or int(expiry) < time.time():
            return None
        digest = hmac.new(self.secret.encode(), username.encode(), hashlib.sha1).digest()
        password = base64.b64encode(digest).decode()
        return hashlib.md5(f"{username}:{self.REALM}:{password}".encode()).digest()
