"""Signalling helpers: a hostile WebSocket endpoint and the reasons of a result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.checks.signalling.xmpp import XmppResult
from monitor.model import ServerReport


def reasons(result: XmppResult | ServerReport) -> dict[str, str]:
    return {c.check.value: c.reason.value for c in result.checks}


def _xmpp_handler(
    frames: list[str | bytes],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A WebSocket endpoint that answers the client's first frame with ``frames``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("xmpp",), max_msg_size=0)
        await ws.prepare(request)
        await ws.receive()
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        async for _ in ws:
            pass
        return ws

    return handle


Xmpp = Callable[..., Awaitable[XmppResult]]


MARKER = "eyJTECRET.TOKEN.MARKER"


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing">&lol3;</open>'
)


EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing">&xxe;</open>'
)
