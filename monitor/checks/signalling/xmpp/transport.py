"""Where signalling may go, and the WebSocket transport (RFC 7395).

A browser's WebSocket does not follow redirects, so neither does the probe;
a token goes only to the server it is for. The WebSocket is the network
layer's (``monitor.net.websocket``), on the probes' resolver and timed
connection; BOSH's aiohttp session refuses redirects (``no_redirects``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING, Final
from xml.etree.ElementTree import Element

import aiohttp
from yarl import URL

from monitor import escape
from monitor.checks.signalling.xmpp.framing import (
    MAX_FRAME,
    NS_FRAMING,
    esc,
    parse_frame,
    q,
)
from monitor.checks.tokens import origin_of_url
from monitor.model import Reason
from monitor.net import NetError, Resolver
from monitor.net.aio import aiohttp_failure
from monitor.net.websocket import MessageType, WebSocket

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
    NetError (``protocol_error``) that shows the URL, cut and escaped.
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
        raise NetError(
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
        raise NetError(
            Reason.PROTOCOL_ERROR, "config.js names a malformed signalling URL; no token is sent"
        )
    home = allowed[0] or ""
    if home.startswith("https://") and target.startswith("http://"):
        raise NetError(
            Reason.PROTOCOL_ERROR, "config.js sends signalling unencrypted; no token is sent there"
        )
    if target in allowed:
        return
    same_host = (URL(url_text).host or "").lower() == (URL(origins[0]).host or "").lower()
    where = "another port of the host" if same_host else "another host"
    raise NetError(
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
        raise NetError(
            Reason.PROTOCOL_ERROR,
            f"config.js sends signalling to another host ({url.host}); "
            "a server probed by URL is probed on its own host only",
        )


def connect_error(exc: aiohttp.ClientError, url: URL, what: str) -> NetError:
    """An aiohttp connection failure (BOSH) as a reason an operator can act on."""
    failure = aiohttp_failure(exc, url.host, url.port, what)
    return private(failure, url) if failure.reason is Reason.PRIVATE_ADDRESS else failure


def private(exc: NetError, url: URL) -> NetError:
    """A refused address, naming the signalling URL config.js gave (never its query)."""
    shown = escape.plain(str(url.with_query(None).with_fragment(None)), 200)
    return NetError(Reason.PRIVATE_ADDRESS, f"config.js's {shown}: {exc.detail}")


class WebSocketTransport:
    """RFC 7395: one XML element per WebSocket message."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    @classmethod
    async def connect(
        cls,
        resolver: Resolver | None,
        url: URL,
        query: dict[str, str],
        origin: str,
        settings: XmppSettings,
    ) -> WebSocketTransport:
        full = url.update_query(query)
        secure = url.scheme == "wss"
        try:
            ws = await WebSocket.connect(
                resolver,
                secure=secure,
                host=url.raw_host or "",
                port=url.port or (443 if secure else 80),
                target=full.raw_path_qs,
                headers={"Origin": origin, "User-Agent": settings.user_agent},
                protocols=("xmpp",),
                ssl_context=settings.ssl_context,
                max_message=MAX_FRAME,
                reach=settings.reach,
            )
        except NetError as exc:
            if exc.reason is Reason.PRIVATE_ADDRESS:
                raise private(exc, url) from None
            raise
        return cls(ws)

    @property
    def closed(self) -> bool:
        return self.ws.closed

    def arrived(self) -> float | None:
        """When bytes last arrived on the connection (``time.monotonic``)."""
        return self.ws.arrived()

    async def open(self, to: str, restart: bool) -> None:
        await self.send(f'<open xmlns="{NS_FRAMING}" to="{esc(to)}" version="1.0"/>')
        while (tag := (await self.recv()).tag) != q(NS_FRAMING, "open"):
            if tag.endswith("}open") or tag == "open":
                raise NetError(
                    Reason.PROTOCOL_ERROR,
                    f"the server opened the stream in another namespace ({escape.plain(tag, 80)}), "
                    f"not {NS_FRAMING!r}",
                )

    async def send(self, xml: str) -> None:
        await self.ws.send_text(xml)

    async def recv(self) -> Element:
        """The next frame as an element; stream errors and closes raise."""
        msg = await self.ws.receive()
        if msg.type is MessageType.TEXT:
            elem = parse_frame(msg.data)
            if elem.tag == q(NS_FRAMING, "close"):
                raise NetError(Reason.CONNECTION_CLOSED, "the server closed the stream")
            return elem
        if msg.type is MessageType.ERROR:
            detail = str(msg.data)[:120] if msg.data else "WebSocket error"
            if "too big" in detail.lower() or "message size" in detail.lower():
                raise NetError(Reason.XML_ERROR, f"frame too large: {detail}")
            raise NetError(Reason.CONNECTION_CLOSED, f"WebSocket error: {detail}")
        if msg.type is MessageType.BINARY:
            raise NetError(Reason.XML_ERROR, "binary frame on an XMPP stream")
        code = self.ws.close_code
        raise NetError(Reason.CONNECTION_CLOSED, f"the WebSocket was closed (code {code})")

    async def close_stream(self) -> None:
        await self.send(f'<close xmlns="{NS_FRAMING}"/>')
        while True:  # until the server closes its side (recv raises)
            await self.recv()

    async def abort(self) -> None:
        # The close handshake waits for the server's close frame; a server that
        # never sends one must not hold the probe: on the timeout the socket drops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await self.ws.close()
        self.ws.abort()
