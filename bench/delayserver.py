"""A lean HTTPS + XMPP-over-WebSocket server that holds two answers for a known delay.

It answers what a web and signalling ladder asks (``/``, ``config.js``,
``external_api.js``, the WebSocket upgrade with sub-protocol ``xmpp``,
stream open, SASL ANONYMOUS, bind, ping, the focus request, a MUC join and
leave, close) on raw asyncio protocols, with as little work per request as
it can, so that its own processing adds little to what a prober measures.

Two answers are held for exactly ``delay`` seconds, counted from the moment
the request's bytes are handed to the protocol: ``GET /`` (of any server
path ending in ``/``) and the reply to an XMPP ping. A hold sleeps on the
loop until ``spin`` seconds before its end, then spins, so it ends within
microseconds; the overshoot of every hold is kept, in order, under the
request's path (``/s/<server>/``) or, for pings, under ``ws:<server>`` (the
WebSocket URL in a server's config.js names it): ``GET /_bench/holds``, and
their summary at ``/_bench/stats``; ``/_bench/reset`` clears them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import signal
import ssl
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Final, cast

from bench.common import run_loop, summary
from bench.targets import config_js, external_api_js, index_html

__all__ = ["DOMAIN", "add_arguments", "main"]

DOMAIN: Final = "meet.bench"
NS_FRAMING: Final = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL: Final = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND: Final = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT: Final = "jabber:client"
NS_PING: Final = "urn:xmpp:ping"
NS_FOCUS: Final = "http://jitsi.org/protocol/focus"
NS_MUC_USER: Final = "http://jabber.org/protocol/muc#user"
_WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--delay", type=float, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument(
        "--spin", type=float, default=0.0015, help="spin (not sleep) this last part of a hold"
    )
    parser.add_argument("--loop", default="uvloop", choices=("asyncio", "uvloop"))
    parser.add_argument("--plain", action="store_true", help="HTTP and WS without TLS")


def _response(status: str, content_type: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nServer: bench-delay\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _frame(text: str) -> bytes:
    """A server-to-client WebSocket text frame (unmasked)."""
    data = text.encode()
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    return bytes((0x81, 126)) + size.to_bytes(2, "big") + data


class Hub:
    """What every connection shares: the delay, canned bodies, the overshoots."""

    def __init__(self, delay: float, spin: float) -> None:
        self.delay = delay
        self.spin = spin
        # How late each hold let go of its answer, and how long writing it took.
        self.overshoot: list[float] = []
        self.writes: list[float] = []
        self.holds: dict[str, list[float]] = {}
        self.loop = asyncio.get_running_loop()
        self.websocket = ""
        self.index = _response("200 OK", "text/html", index_html().encode())
        self.api = _response("200 OK", "application/javascript", external_api_js().encode())
        self.port = 0
        self.scheme = "wss"

    def config(self, server: str) -> bytes:
        ws = f"{self.scheme}://127.0.0.1:{self.port}/xmpp-websocket?srv={server}"
        return _response("200 OK", "application/javascript", config_js(DOMAIN, ws).encode())

    def hold(self, start: float, send: bytes, transport: asyncio.WriteTransport, key: str) -> None:
        """Write ``send`` exactly ``delay`` after ``start`` (perf_counter)."""
        end = start + self.delay
        wait = end - time.perf_counter() - self.spin
        self.loop.call_later(max(0.0, wait), self._release, end, send, transport, key)

    def _release(
        self, end: float, send: bytes, transport: asyncio.WriteTransport, key: str
    ) -> None:
        while (now := time.perf_counter()) < end:
            pass
        self.overshoot.append(now - end)
        self.holds.setdefault(key, []).append(now - end)
        if not transport.is_closing():
            transport.write(send)
        self.writes.append(time.perf_counter() - now)


class Conn(asyncio.Protocol):
    """One connection: HTTP/1.1 requests, then maybe a WebSocket carrying XMPP."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.buf = b""
        self.ws = False
        self.authed = False
        self.server = ""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        start = time.perf_counter()
        self.buf += data
        if self.ws:
            self._frames(start)
            return
        while b"\r\n\r\n" in self.buf and not self.ws:
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self._request(head, start)
        if self.ws and self.buf:
            self._frames(start)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _request(self, head: bytes, start: float) -> None:
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1] if " " in lines[0] else "/"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        hub = self.hub
        if path.startswith("/xmpp-websocket"):
            if "xmpp" not in headers.get("sec-websocket-protocol", ""):
                self._write(_response("501 Not Implemented", "text/plain", b"no xmpp"))
                return
            key = headers.get("sec-websocket-key", "").encode()
            accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest()).decode()
            self._write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                    "Sec-WebSocket-Protocol: xmpp\r\n\r\n"
                ).encode()
            )
            self.ws = True
            self.server = path.partition("srv=")[2].partition("&")[0]
        elif path.endswith("/config.js"):
            self._write(hub.config(path.removesuffix("/config.js").rpartition("/")[2]))
        elif path.endswith("/external_api.js"):
            self._write(hub.api)
        elif path == "/_bench/stats":
            stats = {"overshoot": summary(hub.overshoot), "write": summary(hub.writes)}
            body = json.dumps(stats).encode()
            self._write(_response("200 OK", "application/json", body))
        elif path == "/_bench/reset":
            hub.overshoot.clear()
            hub.holds.clear()
            hub.writes.clear()
            self._write(_response("200 OK", "text/plain", b"ok"))
        elif path == "/_bench/holds":
            self._write(_response("200 OK", "application/json", json.dumps(hub.holds).encode()))
        elif path.endswith("/"):
            assert self.transport is not None
            hub.hold(start, hub.index, self.transport, path)
        else:
            self._write(_response("404 Not Found", "text/plain", b"not found"))

    def _frames(self, start: float) -> None:
        buf = self.buf
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            size = buf[1] & 0x7F
            at = 2
            if size == 126:
                if len(buf) < 4:
                    break
                size, at = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    break
                size, at = int.from_bytes(buf[2:10], "big"), 10
            masked = buf[1] & 0x80
            mask = buf[at : at + 4] if masked else b""
            at += 4 if masked else 0
            if len(buf) < at + size:
                break
            payload = buf[at : at + size]
            buf = buf[at + size :]
            if masked:
                key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
                payload = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
            if opcode == 0x8:  # close: answer it and hang up
                self._write(bytes((0x88, 2)) + (1000).to_bytes(2, "big"))
                assert self.transport is not None
                self.transport.close()
                break
            if opcode == 0x9:  # ping
                self._write(bytes((0x8A, len(payload))) + payload)
            elif opcode == 0x1:
                self._xmpp(payload.decode(), start)
        self.buf = buf

    def _xmpp(self, text: str, start: float) -> None:
        elem = ET.fromstring(text)
        tag = elem.tag
        send = self._write
        if tag == f"{{{NS_FRAMING}}}open":
            send(
                _frame(
                    f"<open xmlns='{NS_FRAMING}' from='{DOMAIN}' id='{secrets.token_hex(8)}' "
                    "version='1.0' xml:lang='en'/>"
                )
            )
            features = (
                f"<bind xmlns='{NS_BIND}'/>"
                if self.authed
                else f"<mechanisms xmlns='{NS_SASL}'><mechanism>ANONYMOUS</mechanism></mechanisms>"
            )
            send(
                _frame(
                    "<stream:features xmlns:stream='http://etherx.jabber.org/streams' "
                    f"xmlns='{NS_CLIENT}'>{features}</stream:features>"
                )
            )
        elif tag == f"{{{NS_SASL}}}auth":
            self.authed = True
            send(_frame(f"<success xmlns='{NS_SASL}'/>"))
        elif tag == f"{{{NS_CLIENT}}}iq":
            iq_id = elem.get("id", "")
            if elem.find(f"{{{NS_BIND}}}bind") is not None:
                jid = f"{secrets.token_hex(8)}@{DOMAIN}/{secrets.token_hex(4)}"
                send(
                    _frame(
                        f"<iq xmlns='{NS_CLIENT}' type='result' id='{iq_id}'>"
                        f"<bind xmlns='{NS_BIND}'><jid>{jid}</jid></bind></iq>"
                    )
                )
            elif (conf := elem.find(f"{{{NS_FOCUS}}}conference")) is not None:
                send(
                    _frame(
                        f"<iq xmlns='{NS_CLIENT}' type='result' id='{iq_id}' "
                        f"from='focus.{DOMAIN}'><conference xmlns='{NS_FOCUS}' ready='true' "
                        f"room='{conf.get('room', '')}'/></iq>"
                    )
                )
            else:
                reply = _frame(
                    f"<iq xmlns='{NS_CLIENT}' type='result' id='{iq_id}' from='{DOMAIN}'/>"
                )
                if elem.find(f"{{{NS_PING}}}ping") is not None:
                    assert self.transport is not None
                    self.hub.hold(start, reply, self.transport, f"ws:{self.server}")
                else:
                    send(reply)
        elif tag == f"{{{NS_CLIENT}}}presence":
            to = elem.get("to", "")
            room = to.partition("/")[0]
            if elem.get("type") == "unavailable":
                send(
                    _frame(
                        f"<presence xmlns='{NS_CLIENT}' from='{to}' type='unavailable'>"
                        f"<x xmlns='{NS_MUC_USER}'><item affiliation='none' role='none'/>"
                        "<status code='110'/></x></presence>"
                    )
                )
            else:
                send(
                    _frame(
                        f"<presence xmlns='{NS_CLIENT}' from='{room}/focus'>"
                        f"<x xmlns='{NS_MUC_USER}'><item affiliation='owner' role='moderator'/>"
                        "</x></presence>"
                    )
                )
                send(
                    _frame(
                        f"<presence xmlns='{NS_CLIENT}' from='{to}'>"
                        f"<x xmlns='{NS_MUC_USER}'><item affiliation='owner' role='moderator'/>"
                        "<status code='110'/></x></presence>"
                    )
                )
        elif tag == f"{{{NS_FRAMING}}}close":
            send(_frame(f"<close xmlns='{NS_FRAMING}'/>"))


async def _serve(args: argparse.Namespace) -> None:
    hub = Hub(args.delay, args.spin)
    ctx = None
    if not args.plain:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    server = await hub.loop.create_server(lambda: Conn(hub), "127.0.0.1", 0, ssl=ctx, backlog=1024)
    hub.port = server.sockets[0].getsockname()[1]
    hub.scheme = "ws" if args.plain else "wss"
    print(json.dumps({"port": hub.port}), flush=True)
    stop = asyncio.Event()
    hub.loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


def main(args: argparse.Namespace) -> None:
    """Serve on a free loopback port; print ``{"port": N}``; run until SIGTERM."""
    run_loop(_serve(args), args.loop)
