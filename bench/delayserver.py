"""A lean HTTPS + XMPP-over-WebSocket server that holds two answers for a known delay.

It answers what a web and signalling ladder asks (``/``, ``config.js``,
``external_api.js``, the WebSocket upgrade with sub-protocol ``xmpp``,
stream open, SASL ANONYMOUS, bind, ping, the focus request, a MUC join and
leave, close) on raw asyncio protocols, with as little work per request as
it can, so that its own processing adds little to what a prober measures.

Two answers are held for exactly ``delay`` seconds, counted from the moment
the request's bytes reached the server's socket (the kernel's receive
stamp, read by ``monitor.net.transport``'s ``StampedTransport``, so a busy
loop that reads a request late does not hold it longer): ``GET /`` (of any
server path ending in ``/``) and the reply to an XMPP ping. A hold ends on
a timerfd in a thread of its own (woken 1 ms early, then spinning), which
sends the answer's bytes (sealed into TLS records on the loop when the hold
began), so it ends at its time in the median and a few tenths of a
millisecond late at worst (bench/RESULTS.md, section 3), whatever the loop
is doing. How late each hold let go is kept, in order, under the request's
path (``/s/<server>/``) or, for pings, under ``ws:<server>`` (the WebSocket
URL in a server's config.js names it): ``GET /_bench/holds``, and their
summary at ``/_bench/stats``; ``GET /_bench/times`` has each hold's
request, release and written times (``perf_counter``, which is
CLOCK_MONOTONIC as the monitor's ``time.monotonic`` is, so the two can be
set side by side); ``/_bench/reset`` clears them.

Until 2026-12 a hold slept on the loop's timer until 1.5 ms before its end
and then spun: that blocked the loop, so a request that arrived meanwhile
was read up to 2.5 ms late (its hold started that late), and spinning
processes took the cores the prober needed. A prober whose requests come
one at a time (blackbox_exporter in the light-load run) never met another
hold's spin; a ladder, whose own ping hold and other servers' holds share
the delay servers, did. And a hold let go by the loop was late whenever
the loop was busy with another connection's handshake, which a ladder's
load brings about more often than a lone GET's (bench/RESULTS.md,
section 3).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import ctypes.util
import gc
import hashlib
import heapq
import json
import os
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Final, cast

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


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC: Final = 1  # what time.perf_counter reads on Linux
_TFD_CLOEXEC: Final = 0o2000000
_TFD_TIMER_ABSTIME: Final = 1
# The releaser wakes this long before a hold's end and spins the rest (waking
# a sleeping thread on an idle vCPU took up to 0.5 ms on this VM).
_LEAD: Final = 0.001


class _Timer:
    """A timerfd on CLOCK_MONOTONIC: expires at an absolute ``perf_counter`` time.

    The loop's own timers (``call_later``) have a millisecond's resolution
    (uvloop's libuv counts in milliseconds); a timerfd's expiry is exact to
    microseconds. This one is blocking: a thread waits on it in ``wait``.
    """

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")

    def arm(self, when: float) -> None:
        sec = int(when)
        value = _Timespec(sec, max(1, int((when - sec) * 1e9)))
        spec = _Itimerspec(_Timespec(0, 0), value)
        if self._libc.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def wait(self) -> None:
        """Until the timer expires (the GIL is free meanwhile)."""
        with contextlib.suppress(InterruptedError):
            os.read(self.fd, 8)


def _seal(transport: Any, data: bytes) -> bytes | None:
    """The bytes ``transport.write(data)`` would put on the wire now (TLS records
    sealed), without sending them; None when the transport has bytes of its own
    still to send (then the answer goes through ``write`` at its time)."""
    if transport.get_write_buffer_size() or transport.is_closing():
        return None
    tls = transport.get_extra_info("ssl_object")
    if tls is None:
        return data
    tls.write(data)
    return transport._outgoing.read()  # type: ignore[no-any-return]


Hold = tuple[float, int, float, bytes, Any, str]  # end, sequence, start, bytes, transport, key


class Hub:
    """What every connection shares: the delay, canned bodies, the holds and their times.

    Held answers are let go by a thread of its own (``_releaser``), not by the
    loop: the loop may be busy when a hold ends (a TLS handshake takes it for
    a millisecond, and a ladder brings more of them than a lone GET), the
    thread is not. The answer's TLS records are made on the loop when the
    hold starts (nothing else is written on that connection while its answer
    is held), and at the hold's end the thread only sends the bytes.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._due: list[Hold] = []
        self._seq = 0
        self._timer = _Timer()
        self._lock = threading.Lock()  # the holds waiting, and what is recorded
        # How late each hold let go of its answer, and how long writing it took.
        self.overshoot: list[float] = []
        self.writes: list[float] = []
        self.holds: dict[str, list[float]] = {}
        # Per hold, by key: (request came, answer let go, answer written), perf_counter.
        self.times: dict[str, list[tuple[float, float, float]]] = {}
        self.loop = asyncio.get_running_loop()
        self.websocket = ""
        self.index = _response("200 OK", "text/html", index_html().encode())
        self.api = _response("200 OK", "application/javascript", external_api_js().encode())
        self.port = 0
        self.scheme = "wss"
        threading.Thread(target=self._releaser, name="releaser", daemon=True).start()

    def config(self, server: str) -> bytes:
        ws = f"{self.scheme}://127.0.0.1:{self.port}/xmpp-websocket?srv={server}"
        return _response("200 OK", "application/javascript", config_js(DOMAIN, ws).encode())

    def hold(self, start: float, send: bytes, transport: asyncio.WriteTransport, key: str) -> None:
        """Write ``send`` exactly ``delay`` after ``start`` (perf_counter)."""
        end = start + self.delay
        sealed = _seal(transport, send)
        with self._lock:
            self._seq += 1
            if sealed is None:  # written by the loop at its time
                self.loop.call_later(
                    max(0.0, end - time.perf_counter()),
                    self._write,
                    end,
                    start,
                    send,
                    transport,
                    key,
                )
                return
            heapq.heappush(self._due, (end, self._seq, start, sealed, transport, key))
            if self._due[0][1] == self._seq:
                self._timer.arm(end - _LEAD)

    def _releaser(self) -> None:
        """The thread: wait for the earliest hold's end, send its bytes, go on."""
        while True:
            self._timer.wait()
            while True:
                with self._lock:
                    if not self._due:
                        break
                    if self._due[0][0] - _LEAD > time.perf_counter():
                        self._timer.arm(self._due[0][0] - _LEAD)
                        break
                    end, _, start, sealed, transport, key = heapq.heappop(self._due)
                while (now := time.perf_counter()) < end:
                    pass  # the last _LEAD: a thread woken from sleep is tens of us late
                sock = transport.get_extra_info("socket")
                try:
                    sent = sock.send(sealed)
                except BlockingIOError:
                    sent = 0
                except OSError:  # the client is gone
                    sent = len(sealed)
                if sent < len(sealed):  # never seen (the socket's buffer was empty):
                    self.loop.call_soon_threadsafe(transport.abort)  # fail, never hang
                self._record(key, start, end, now, time.perf_counter())

    def _write(
        self, end: float, start: float, send: bytes, transport: asyncio.WriteTransport, key: str
    ) -> None:
        now = time.perf_counter()
        if not transport.is_closing():
            transport.write(send)
        self._record(key, start, end, now, time.perf_counter())

    def _record(self, key: str, start: float, end: float, now: float, written: float) -> None:
        with self._lock:
            self.overshoot.append(now - end)
            self.holds.setdefault(key, []).append(now - end)
            self.writes.append(written - now)
            self.times.setdefault(key, []).append((start, now, written))

    def dump(self, what: str) -> bytes:
        """``holds``, ``times`` or ``stats``, as JSON."""
        with self._lock:
            if what == "holds":
                return json.dumps(self.holds).encode()
            if what == "times":
                return json.dumps(self.times).encode()
            stats = {"overshoot": summary(self.overshoot), "write": summary(self.writes)}
            return json.dumps(stats).encode()

    def reset(self) -> None:
        with self._lock:
            self.overshoot.clear()
            self.holds.clear()
            self.times.clear()
            self.writes.clear()
        gc.collect()  # between runs, when nothing is held (see main)


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
        # When the request's bytes reached the socket (the kernel's stamp),
        # not when this loop got round to them: a busy target holds no longer.
        start = getattr(self.transport, "arrived", None) or time.perf_counter()
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
        elif path in ("/_bench/stats", "/_bench/holds", "/_bench/times"):
            body = hub.dump(path.rpartition("/")[2])
            self._write(_response("200 OK", "application/json", body))
        elif path == "/_bench/reset":
            hub.reset()
            self._write(_response("200 OK", "text/plain", b"ok"))
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
    # This checkout's transport (imported here: a worker measuring an earlier
    # monitor imports bench with that monitor first on its path).
    from monitor.net.transport import StampedTransport

    hub = Hub(args.delay)
    ctx = None
    if not args.plain:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.num_tickets = 0  # as the bench's nginx: every probe a full handshake
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    handshakes: set[asyncio.Task[None]] = set()

    async def handshake(transport: Any) -> None:
        assert ctx is not None
        try:
            await transport.start_tls(ctx, None, server_side=True)
        except (ssl.SSLError, OSError):
            transport.abort()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = StampedTransport(hub.loop, sock, Conn(hub))
            transport.start()
            if ctx is not None:
                task = hub.loop.create_task(handshake(transport))
                handshakes.add(task)
                task.add_done_callback(handshakes.discard)

    hub.loop.add_reader(listener.fileno(), accept)
    hub.port = listener.getsockname()[1]
    hub.scheme = "ws" if args.plain else "wss"
    print(json.dumps({"port": hub.port}), flush=True)
    stop = asyncio.Event()
    hub.loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    hub.loop.remove_reader(listener.fileno())
    listener.close()


def main(args: argparse.Namespace) -> None:
    """Serve on a free loopback port; print ``{"port": N}``; run until SIGTERM."""
    # The releaser thread gets the GIL within 50 us of asking, even while the
    # loop runs Python code (OpenSSL's handshake work lets go of it anyway).
    sys.setswitchinterval(5e-5)
    # A collection holds the GIL, and so the releaser, for milliseconds (a
    # ping let go 1.5 ms late): none while probes run; /_bench/reset collects.
    gc.disable()
    run_loop(_serve(args), args.loop)
