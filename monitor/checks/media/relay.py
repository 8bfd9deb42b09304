"""Whether a TURN service relays: two allocations sending a datagram to each other and back.

An allocation proves that the server answers, not that media passes: the
classic coturn mistakes (a wrong ``external-ip`` behind NAT, a relay port
range a firewall blocks, peers denied) leave Allocate working while every
relayed packet is lost. So, as two browsers' ICE agents meeting on one TURN
server do: two allocations on the same service and transport, a
CreatePermission on each for the other's relayed address, then a datagram
from the first relay to the second (a Send indication, which the server
turns into a Data indication at the other end) and back, its round trip
timed. Both allocations are released at once (a Refresh with lifetime 0,
concurrently), whatever happened.

aioice does the allocations and the authenticated transactions
(``request_with_retry``); its ``stun`` module has no ``DATA`` attribute, so
a Send indication is a ``stun.Message`` with that attribute appended
(``Indication``) and a Data indication's payload is read here
(``read_indication``; the lab's simulated TURN server uses both).

Reasons of its own: ``turn_relay_forbidden`` (a 403 on CreatePermission:
the server denies the peer), ``turn_relay_timeout`` (no answer to
CreatePermission, or no datagram back), ``turn_relay_unreachable`` (a
relayed address no participant could reach, such as a private one handed
out to the public: ``external-ip`` is missing or wrong). An allocation that
fails keeps the ``turn_*`` reason an Allocate would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from aioice import stun

from monitor import escape
from monitor.checks.media.client import (
    RELEASE_TIMEOUT,
    _error_code,
    _open,
    _oserror,
    _race,
    _release,
    _shut,
    _Tcp,
    _turn_failed,
    _Udp,
)
from monitor.checks.media.result import MediaService
from monitor.model import Reason
from monitor.net import NetError

__all__ = ["Indication", "RelayResult", "read_indication", "relay"]

T = TypeVar("T")
Address = tuple[str, int]
# STUN's DATA attribute (RFC 8656 section 18.4), which aioice's stun module does not know.
DATA: Final = 0x0013
# A Data indication's message type: method DATA (0x007) in class indication (0x010).
DATA_INDICATION: Final = stun.Method.DATA | stun.Class.INDICATION
# Most Data indications kept unread per allocation (the rest are dropped).
INBOX: Final = 32
# The first wait before a datagram is sent again (then doubled), as STUN's RTO.
RTO: Final = 0.5
# Share of the time kept for the release, at most ``client.RELEASE_TIMEOUT``.
RELEASE_SHARE: Final = 0.25
_PING: Final = b"jitsi-monitor turn_relay ping "
_PONG: Final = b"jitsi-monitor turn_relay pong "

RelayResult = tuple[float, Address, Address]


class Indication(stun.Message):
    """A Send (or Data) indication: ``XOR-PEER-ADDRESS`` as aioice writes it, then ``DATA``."""

    def __init__(
        self, peer: Address, payload: bytes, method: stun.Method = stun.Method.SEND
    ) -> None:
        super().__init__(method, stun.Class.INDICATION)
        self.attributes["XOR-PEER-ADDRESS"] = peer
        self.payload = payload

    def __bytes__(self) -> bytes:
        head = super().__bytes__()
        padding = bytes(stun.padding_length(len(self.payload)))
        data = struct.pack("!HH", DATA, len(self.payload)) + self.payload + padding
        length = len(head) - 20 + len(data)
        return head[:2] + struct.pack("!H", length) + head[4:] + data


def read_indication(data: bytes) -> tuple[Address, bytes] | None:
    """The peer and payload of a Data (or Send) indication, None if ``data`` is none."""
    if len(data) < 20:
        return None
    kind = struct.unpack("!H", data[:2])[0]
    if kind not in (DATA_INDICATION, stun.Method.SEND | stun.Class.INDICATION):
        return None
    try:
        message = stun.parse_message(data)
    except Exception:  # a hostile message aioice's parser chokes on
        return None
    peer = message.attributes.get("XOR-PEER-ADDRESS")
    if not isinstance(peer, tuple):
        return None
    pos = 20
    while pos + 4 <= len(data):
        kind, length = struct.unpack("!HH", data[pos : pos + 4])
        if kind == DATA:
            payload = data[pos + 4 : pos + 4 + length]
            return (peer, payload) if len(payload) == length else None
        pos += 4 + length + stun.padding_length(length)
    return None


class _Inbox:
    """Keeps the Data indications that arrive (aioice's client drops them)."""

    inbox: asyncio.Queue[tuple[Address, bytes]]

    def _take(self, data: bytes | str) -> bool:
        """Whether ``data`` was a Data indication (then it is kept, if there is room)."""
        if not isinstance(data, bytes):
            return False
        found = read_indication(data)
        if found is None:
            return False
        with contextlib.suppress(asyncio.QueueFull):
            self.inbox.put_nowait(found)
        return True


# aioice's mixin types connection_lost's argument narrower than asyncio does.
class _RelayUdp(_Inbox, _Udp):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox = asyncio.Queue(INBOX)

    def datagram_received(self, data: bytes | str, addr: tuple[str, int]) -> None:
        if not self._take(data):
            super().datagram_received(data, addr)


class _RelayTcp(_Inbox, _Tcp):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox = asyncio.Queue(INBOX)

    def datagram_received(self, data: bytes | str, addr: tuple[str, int]) -> None:
        # aioice's stream mixin frames the TCP stream into messages, then calls this.
        if not self._take(data):
            super().datagram_received(data, addr)


_Relay = _RelayUdp | _RelayTcp


class _Step:
    """What the probe is doing (its failures are read by it)."""

    def __init__(self) -> None:
        self.name = "allocating"
        self.sent = 0


async def _both(first: Awaitable[T], second: Awaitable[T]) -> tuple[T, T]:
    """Both results; the first failure cancels the other and is raised."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return tasks[0].result(), tasks[1].result()
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def relay(
    service: MediaService,
    address: str,
    username: str | None,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    judge: Callable[[str], str | None],
    limit: float,
) -> RelayResult:
    """Two allocations relay a datagram to each other and back: the round trip, both relays.

    ``judge`` says why a relayed address must not be used (the media
    family's address policy), or None. Bounded by ``limit`` seconds, the
    release included. Raises ``NetError`` with a ``turn_relay_*`` reason,
    or the ``turn_*`` reason of an allocation that failed.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    budget = limit - min(limit * RELEASE_SHARE, RELEASE_TIMEOUT)
    work_end = end - limit + budget
    opened: list[_Relay] = []
    step = _Step()

    async def allocation() -> tuple[_Relay, Address]:
        protocol = await _open(
            service, address, ssl_context, username, password, kinds=(_RelayUdp, _RelayTcp)
        )
        assert isinstance(protocol, _RelayUdp | _RelayTcp)
        opened.append(protocol)
        relayed = await _race(protocol, protocol.connect())
        return protocol, relayed

    try:
        async with asyncio.timeout_at(work_end):
            (a, relay_a), (b, relay_b) = await _both(allocation(), allocation())
            for relayed in (relay_a, relay_b):
                why = _unusable(relayed, judge)
                if why is not None:
                    raise NetError(Reason.TURN_RELAY_UNREACHABLE, why)
            step.name = "permission"
            await _both(_permit(a, relay_b), _permit(b, relay_a))
            step.name = "relaying"
            rtt = await _ping_pong(a, relay_a, b, relay_b, step)
        return rtt, relay_a, relay_b
    except NetError:
        raise
    except TimeoutError:
        raise _timeout(step, f"in {budget:.1f} s") from None
    except stun.TransactionTimeout:
        raise _timeout(step, "after the retransmissions") from None
    except stun.TransactionFailed as exc:
        raise _failed(step, exc, username is not None) from None
    except ConnectionRefusedError as exc:
        raise NetError(Reason.TURN_REFUSED, _oserror(exc)) from None
    except ssl.SSLError as exc:
        raise NetError(Reason.TURN_TLS_ERROR, _oserror(exc)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # KeyError, TypeError: an answer without a field aioice reads (LIFETIME, ERROR-CODE...).
        raise NetError(Reason.TURN_ERROR, f"{step.name}: {_oserror(exc)}") from None
    finally:
        # Both at once, within what is left of the bound; not when the ladder
        # is being cancelled (the allocations then expire after their lifetime).
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            await asyncio.gather(*(_release(p, end) for p in opened))
        await _shut(list(opened), end)


def _unusable(relayed: Address, judge: Callable[[str], str | None]) -> str | None:
    host = relayed[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return f"the relayed address {escape.plain(host, 100)} is not an IP address"
    why = judge(host)
    if why is None:
        return None
    return f"the relayed address {why}: no participant could reach it (check external-ip)"


async def _permit(protocol: _Relay, peer: Address) -> None:
    """A CreatePermission for ``peer``'s address (authenticated as the Allocate was)."""
    request = stun.Message(stun.Method.CREATE_PERMISSION, stun.Class.REQUEST)
    request.attributes["XOR-PEER-ADDRESS"] = peer
    await _race(protocol, protocol.request_with_retry(request))


async def _ping_pong(
    a: _Relay, relay_a: Address, b: _Relay, relay_b: Address, step: _Step
) -> float:
    """From relay A to relay B and back; resent as STUN retransmits (RTO doubling).

    Each ping carries a random token and its number; the round trip is that
    of the ping whose pong came back first.
    """
    token = secrets.token_hex(8).encode()
    sent: dict[int, float] = {}

    async def answer() -> None:
        # B answers every ping of this probe from A, to A's relayed address.
        while True:
            _, payload = await b.inbox.get()
            if payload.startswith(_PING + token + b" "):
                b.send_stun(Indication(relay_a, _PONG + payload[len(_PING) :]), b.server)

    async def resend() -> None:
        wait = RTO
        while True:
            number = len(sent)
            sent[number] = time.monotonic()
            step.sent = len(sent)
            a.send_stun(Indication(relay_b, _PING + token + b" %d" % number), a.server)
            await asyncio.sleep(wait)
            wait *= 2

    async def pong() -> float:
        while True:
            _, payload = await a.inbox.get()
            prefix = _PONG + token + b" "
            if payload.startswith(prefix):
                number = payload[len(prefix) :]
                if number.isdigit() and int(number) in sent:
                    return time.monotonic() - sent[int(number)]

    helpers = [asyncio.ensure_future(answer()), asyncio.ensure_future(resend())]
    try:
        return await _race(a, _race(b, pong()))
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)


def _timeout(step: _Step, how: str) -> NetError:
    if step.name == "allocating":
        return NetError(Reason.TURN_TIMEOUT, f"no allocation {how}")
    if step.name == "permission":
        return NetError(Reason.TURN_RELAY_TIMEOUT, f"no answer to CreatePermission {how}")
    return NetError(
        Reason.TURN_RELAY_TIMEOUT,
        f"no datagram came back through the relays {how} ({step.sent} sent): "
        "check external-ip and that the relay ports are open",
    )


def _failed(step: _Step, exc: stun.TransactionFailed, credentials: bool) -> NetError:
    if step.name == "permission":
        code, text = _error_code(exc)
        detail = f"error {code} {text}".strip()
        if code == 403:
            return NetError(
                Reason.TURN_RELAY_FORBIDDEN,
                f"CreatePermission: {detail}: the server denies the relayed peer "
                "(denied-peer-ip, or a loopback or private relay address)",
            )
        return NetError(Reason.TURN_ERROR, f"CreatePermission: {detail}")
    return _turn_failed(exc, credentials, " (the second allocation)")
