"""One STUN Binding or one TURN Allocate (then its release), over UDP, TCP or TLS.

The messages and the TURN client are aioice's (``aioice.stun``,
``aioice.turn``): its protocol classes do the STUN transactions, the
retransmissions over UDP, the framing over TCP and the 401 challenge of
long-term credentials. TLS (``turns``) is its TCP protocol over an
``ssl`` connection. What is ours: a bound on time, connection errors
(an ICMP port unreachable on UDP, a reset on TCP) ending the wait at once,
a hostile answer never escaping as an exception, and the allocation
released at once (a Refresh with lifetime 0) and never used to relay data
(``relay`` does that, with allocations of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable
from typing import Any, Final, TypeVar

from aioice import stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol

from monitor import escape
from monitor.checks.media.result import MediaService
from monitor.model import Reason
from monitor.net import NetError

__all__ = ["allocate", "binding"]

T = TypeVar("T")
log = logging.getLogger(__name__)
# aioice logs every allocation at INFO: one line per probe and transport is noise
# in the monitor's log (our results say what happened).
logging.getLogger("aioice").setLevel(logging.WARNING)
# The lifetime the Allocate asks for: the allocation is released at once anyway.
LIFETIME: Final = 60
# Longest wait for the release (Refresh with lifetime 0).
RELEASE_TIMEOUT: Final = 1.0


class _Guard:
    """Ends a transaction's wait when the connection fails or an answer breaks the parser."""

    failed: asyncio.Future[BaseException]

    def _fail(self, exc: BaseException) -> None:
        if not self.failed.done():
            self.failed.set_result(exc)


# aioice's mixin types connection_lost's argument narrower than asyncio does.
class _Udp(_Guard, TurnClientUdpProtocol):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failed = asyncio.get_running_loop().create_future()

    def error_received(self, exc: Exception) -> None:
        self._fail(exc)

    def datagram_received(self, data: bytes | str, addr: tuple[str, int]) -> None:
        try:
            super().datagram_received(data, addr)
        except Exception as exc:  # a hostile answer aioice's parser chokes on
            self._fail(ValueError(f"unreadable answer: {type(exc).__name__}"))


class _Tcp(_Guard, TurnClientTcpProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        loop = asyncio.get_running_loop()
        self.failed = loop.create_future()
        # Done when the socket is gone (a TLS close ends after its close_notify).
        self.gone: asyncio.Future[None] = loop.create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the server closed the connection"))
        if not self.gone.done():
            self.gone.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        except Exception as exc:
            self._fail(ValueError(f"unreadable answer: {type(exc).__name__}"))


_Protocol = _Udp | _Tcp


async def _race(protocol: _Protocol, work: Awaitable[T]) -> T:
    """``work``, unless the connection fails first (then that failure is raised)."""
    task = asyncio.ensure_future(work)
    try:
        waits: set[asyncio.Future[Any]] = {task, protocol.failed}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if task.done() and not task.cancelled():
        return task.result()
    raise protocol.failed.result()


async def _open(
    service: MediaService,
    address: str,
    ssl_context: ssl.SSLContext | None,
    username: str | None = None,
    password: str | None = None,
    kinds: tuple[type[_Udp], type[_Tcp]] = (_Udp, _Tcp),
) -> _Protocol:
    """The connection to the service (``kinds``: the protocol classes, the relay's own)."""
    udp_kind, tcp_kind = kinds
    loop = asyncio.get_running_loop()
    server = (address, service.port)
    settings: dict[str, Any] = {
        "username": username,
        "password": password,
        "lifetime": LIFETIME,
        "channel_refresh_time": LIFETIME,
    }
    if service.transport == "udp":
        _, udp = await loop.create_datagram_endpoint(
            lambda: udp_kind(server, **settings), remote_addr=server
        )
        return udp
    tls = service.type == "turns"
    _, tcp = await loop.create_connection(
        lambda: tcp_kind(server, **settings),
        host=address,
        port=service.port,
        ssl=ssl_context if tls else None,
        server_hostname=service.host if tls else None,
        ssl_handshake_timeout=None,
    )
    return tcp


def _close(protocol: _Protocol) -> None:
    task = protocol.refresh_task
    if task is not None:
        task.cancel()
        protocol.refresh_task = None
    transport = getattr(protocol, "transport", None)
    if transport is not None:
        transport.close()


async def _shut(protocols: list[_Protocol], end: float) -> None:
    """Close the connections, none outliving its probe: a TLS connection's
    close_notify exchange is waited for until ``end`` (at most RELEASE_TIMEOUT),
    then its socket is cut. A ladder being cancelled cuts them at once."""
    waiting: list[_Tcp] = []
    for protocol in protocols:
        _close(protocol)
        if isinstance(protocol, _Tcp) and not protocol.gone.done():
            waiting.append(protocol)
    if not waiting:
        return
    loop = asyncio.get_running_loop()
    left = min(RELEASE_TIMEOUT, end - loop.time())
    task = asyncio.current_task()
    if left > 0 and (task is None or not task.cancelling()):
        await asyncio.wait([p.gone for p in waiting], timeout=left)
    for protocol in waiting:
        transport = getattr(protocol, "transport", None)
        if not protocol.gone.done() and transport is not None:
            transport.abort()


def _error_code(exc: stun.TransactionFailed) -> tuple[int, str]:
    code = exc.response.attributes.get("ERROR-CODE") if exc.response else None
    if not isinstance(code, tuple) or len(code) != 2:
        return 0, "no error code"
    return int(code[0]), escape.plain(code[1], 100)


def _turn_failed(exc: stun.TransactionFailed, credentials: bool, quota: str = "") -> NetError:
    """A TURN server's error answer to an Allocate: turn_unauthorized (401),
    turn_quota (486, ``quota`` saying which allocation) or turn_error."""
    code, text = _error_code(exc)
    detail = f"error {code} {text}".strip()
    if code == 401:
        why = "with the announced credentials" if credentials else "(no credentials announced)"
        return NetError(Reason.TURN_UNAUTHORIZED, f"{detail} {why}")
    if code == 486:
        return NetError(Reason.TURN_QUOTA, detail + quota)
    return NetError(Reason.TURN_ERROR, detail)


async def binding(
    service: MediaService, address: str, limit: float
) -> tuple[float, tuple[str, int]]:
    """A Binding request: its round trip and the mapped address the server saw.

    Raises ``NetError`` with ``stun_timeout`` or ``stun_error``.
    """
    protocol: _Protocol | None = None
    try:
        async with asyncio.timeout(limit):
            protocol = await _open(service, address, None)
            request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            t0 = time.monotonic()
            response, _ = await _race(protocol, protocol.request(request))
            rtt = time.monotonic() - t0
    except TimeoutError:
        raise NetError(Reason.STUN_TIMEOUT, f"no answer in {limit:.1f} s") from None
    except stun.TransactionTimeout:
        raise NetError(Reason.STUN_TIMEOUT, "no answer to the retransmissions") from None
    except stun.TransactionFailed as exc:
        code, text = _error_code(exc)
        raise NetError(Reason.STUN_ERROR, f"error {code} {text}".strip()) from None
    except (OSError, ValueError) as exc:
        raise NetError(Reason.STUN_ERROR, _oserror(exc)) from None
    finally:
        if protocol is not None:
            _close(protocol)
    mapped = response.attributes.get("XOR-MAPPED-ADDRESS") or response.attributes.get(
        "MAPPED-ADDRESS"
    )
    if not isinstance(mapped, tuple):
        # what a client asks STUN for: an answer without it is no use
        raise NetError(Reason.STUN_ERROR, "the answer has no mapped address")
    return rtt, mapped


async def allocate(
    service: MediaService,
    address: str,
    username: str | None,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    limit: float,
) -> float:
    """An Allocate with the announced credentials, released at once; how long it took.

    The time runs from the first Allocate to the allocation (the 401
    challenge included, as a browser sees it), not the connection set-up.
    Raises ``NetError`` with a ``turn_*`` reason.
    """
    protocol: _Protocol | None = None
    end = asyncio.get_running_loop().time() + limit
    try:
        async with asyncio.timeout_at(end):
            try:
                protocol = await _open(service, address, ssl_context, username, password)
            except ssl.SSLError as exc:
                raise NetError(Reason.TURN_TLS_ERROR, _oserror(exc)) from None
            t0 = time.monotonic()
            await _race(protocol, protocol.connect())
            seconds = time.monotonic() - t0
        # Allocated: whatever the release meets, the allocation worked.
        assert protocol is not None
        await _release(protocol, end)
        return seconds
    except TimeoutError:
        raise NetError(Reason.TURN_TIMEOUT, f"no answer in {limit:.1f} s") from None
    except stun.TransactionTimeout:
        raise NetError(Reason.TURN_TIMEOUT, "no answer to the retransmissions") from None
    except stun.TransactionFailed as exc:
        raise _turn_failed(exc, bool(username)) from None
    except ConnectionRefusedError as exc:
        raise NetError(Reason.TURN_REFUSED, _oserror(exc)) from None
    except ssl.SSLError as exc:
        raise NetError(Reason.TURN_TLS_ERROR, _oserror(exc)) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # KeyError, TypeError: a success answer without LIFETIME or a relayed address.
        raise NetError(Reason.TURN_ERROR, _oserror(exc)) from None
    finally:
        if protocol is not None:
            await _shut([protocol], end)


async def _release(protocol: _Protocol, end: float) -> None:
    """Refresh with lifetime 0: the server frees the allocation now, not at its expiry.

    Bounded by ``RELEASE_TIMEOUT`` and by ``end`` (loop time, the probe's own
    bound); any failure is only logged: a server that does not answer the
    release keeps the allocation until its lifetime ends.
    """
    task = protocol.refresh_task
    if task is not None:
        task.cancel()
        protocol.refresh_task = None
    wait = min(RELEASE_TIMEOUT, end - asyncio.get_running_loop().time())
    if wait <= 0:
        log.debug("no time left to release the allocation on %s", protocol.server)
        return
    request = stun.Message(stun.Method.REFRESH, stun.Class.REQUEST)
    request.attributes["LIFETIME"] = 0
    try:
        async with asyncio.timeout(wait):
            await _race(protocol, protocol.request_with_retry(request))
    except Exception as exc:  # KeyError: aioice reading an error answer without ERROR-CODE
        log.debug("releasing the allocation on %s: %s", protocol.server, type(exc).__name__)


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate: {escape.plain(exc.verify_message or exc, 200)}"
    if isinstance(exc, OSError) and exc.strerror:
        return escape.plain(exc.strerror, 200)
    return escape.plain(exc, 200) or type(exc).__name__
