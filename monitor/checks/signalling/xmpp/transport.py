"""Where signalling may go, and the WebSocket transport (RFC 7395).

A browser's WebSocket does not follow redirects, so neither does the probe;
a token goes only to the server it is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from typing import TYPE_CHECKING, Any, Final
from xml.etree.ElementTree import Element

import aiohttp
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from monitor import escape
from monitor.checks.signalling.xmpp.framing import (
    MAX_FRAME,
    NS_FRAMING,
    XmppError,
    esc,
    parse_frame,
    q,
)
from monitor.checks.tokens import origin_of_url
from monitor.model import Reason
from monitor.probes.http_client import tls_failure

if TYPE_CHECKING:
    from monitor.checks.signalling.xmpp.settings import XmppSettings

__all__ = [
    "CLOSE_WAIT",
    "RedirectRefused",
    "WebSocketTransport",
    "check_same_host",
    "check_token_target",
    "connect_error",
    "no_redirects",
    "signalling_url",
    "timed_connector",
]

# How long the WebSocket close handshake may take before the socket is dropped.
CLOSE_WAIT: Final = 0.5


# No spaces, controls or backslashes anywhere; a host of letters, digits,
# dots, hyphens and underscores (or an IP address in brackets).
_BAD_URL_CHARS: Final = re.compile(r"[\s\x00-\x1f\x7f\\]")
_HOST: Final = re.compile(r"[A-Za-z0-9_.-]{1,253}|[0-9A-Fa-f:.]{2,45}")


def signalling_url(text: str, schemes: tuple[str, ...]) -> URL:
    """The one place a signalling URL from config.js is parsed.

    Whatever the text holds, the answer is a URL fit to connect to or an
    XmppError (``protocol_error``) that shows the URL, cut and escaped.
    """
    try:
        url = URL(text)
        host, port = url.host, url.port
        ok = (
            not _BAD_URL_CHARS.search(text)
            and url.scheme in schemes
            and bool(host)
            and _HOST.fullmatch(host or "") is not None
            and port is not None
            and 0 < port < 65536
            and not url.user
            and not url.password
        )
    except Exception:  # hostile text: any failure to parse it is the server's fault
        ok = False
    if not ok:
        shown = escape.plain(text.split("?", 1)[0], 120)
        raise XmppError(
            Reason.PROTOCOL_ERROR,
            f"config.js names a malformed signalling URL {shown!r} (want {'/'.join(schemes)})",
        )
    return url


def check_token_target(url_text: str, origins: tuple[str, ...]) -> None:
    """Send a token only to the server it is for, and encrypted when the server is.

    ``origins``: the server's own origin first, then the others a token may go
    to (its redirect target, ``jwt.signalling_origins``). Origins compare by
    scheme, host and port (``ws``/``wss`` as ``http``/``https``). config.js is
    the server's own word, but a tampered one must not be able to collect a
    valid token for the platform, not even on another port of the same host.
    """
    target, allowed = origin_of_url(url_text), [origin_of_url(o) for o in origins]
    if target is None:
        raise XmppError(
            Reason.PROTOCOL_ERROR, "config.js names a malformed signalling URL; no token is sent"
        )
    home = allowed[0] or ""
    if home.startswith("https://") and target.startswith("http://"):
        raise XmppError(
            Reason.PROTOCOL_ERROR, "config.js sends signalling unencrypted; no token is sent there"
        )
    if target in allowed:
        return
    same_host = (URL(url_text).host or "").lower() == (URL(origins[0]).host or "").lower()
    where = "another port of the host" if same_host else "another host"
    raise XmppError(
        Reason.PROTOCOL_ERROR,
        f"config.js sends signalling to {where} ({target}), not to the server's own origin "
        "or one of jwt.signalling_origins; no token is sent there",
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


def check_same_host(url: URL, origin: str) -> None:
    """Stay on the server's host: a URL probed on demand must not lead elsewhere."""
    home = URL(origin)
    if (url.host or "").lower() != (home.host or "").lower():
        raise XmppError(
            Reason.PROTOCOL_ERROR,
            f"config.js sends signalling to another host ({url.host}); "
            "a server probed by URL is probed on its own host only",
        )


def connect_error(exc: aiohttp.ClientError, url: URL, what: str) -> XmppError:
    """An aiohttp connection failure as a reason an operator can act on."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return XmppError(*tls_failure(exc.certificate_error))
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return XmppError(*tls_failure(exc.os_error))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return XmppError(Reason.DNS_ERROR, f"cannot resolve {url.host}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        reason = Reason.CONNECT_REFUSED if refused else Reason.CONNECT_ERROR
        return XmppError(reason, f"cannot connect to {url.host}:{url.port}")
    # Never the exception's text: aiohttp puts the URL in it, with the token.
    return XmppError(Reason.CONNECTION_CLOSED, f"{what} failed: {type(exc).__name__}")


class _TimedHandler(ResponseHandler):
    """aiohttp's connection protocol, noting when bytes last arrived.

    ``data_received`` runs in the loop's read callback (after TLS decryption,
    in the same callback): the moment a frame is there, not the later moment
    the coroutine waiting for it resumes, which also counts however long the
    loop was busy with other ladders.
    """

    arrived: float | None = None

    def data_received(self, data: bytes) -> None:
        self.arrived = time.monotonic()
        super().data_received(data)


def timed_connector(**kwargs: Any) -> aiohttp.TCPConnector:
    """An ``aiohttp.TCPConnector`` whose connections note when bytes arrive
    (``WebSocketTransport.arrived``). aiohttp makes each connection's protocol
    with the connector's factory; only the protocol's class changes."""
    connector = aiohttp.TCPConnector(**kwargs)
    connector._factory = functools.partial(_TimedHandler, loop=connector._loop)  # type: ignore[assignment]
    return connector


class WebSocketTransport:
    """RFC 7395: one XML element per WebSocket message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        url: URL,
        query: dict[str, str],
        origin: str,
        settings: XmppSettings,
    ) -> WebSocketTransport:
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
            raise connect_error(exc, url, "WebSocket") from None
        return cls(ws)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    def arrived(self) -> float | None:
        """When bytes last arrived on the connection (``time.monotonic``); None
        when the connection was not made by ``timed_connector``."""
        conn = getattr(self.ws, "_conn", None)
        arrived = getattr(getattr(conn, "protocol", None), "arrived", None)
        return arrived if isinstance(arrived, float) else None

    async def open(self, to: str, restart: bool) -> None:
        await self.send(f'<open xmlns="{NS_FRAMING}" to="{esc(to)}" version="1.0"/>')
        while (tag := (await self.recv()).tag) != q(NS_FRAMING, "open"):
            if tag.endswith("}open") or tag == "open":
                raise XmppError(
                    Reason.PROTOCOL_ERROR,
                    f"the server opened the stream in another namespace ({escape.plain(tag, 80)}), "
                    f"not {NS_FRAMING!r}",
                )

    async def send(self, xml: str) -> None:
        try:
            await self.ws.send_str(xml)
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise XmppError(Reason.CONNECTION_CLOSED, f"cannot send: {exc}") from None

    async def recv(self) -> Element:
        """The next frame as an element; stream errors and closes raise."""
        msg = await self.ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            elem = parse_frame(msg.data)
            if elem.tag == q(NS_FRAMING, "close"):
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
