"""BOSH (XEP-0124/XEP-0206): the fallback transport where WebSockets do not pass."""

from __future__ import annotations

import contextlib
import secrets
import ssl
from collections import deque
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import aiohttp
from yarl import URL

from monitor.model import Reason
from monitor.probes.xmpp.framing import (
    MAX_FRAME,
    NS_HTTPBIND,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    NS_XBOSH,
    XmppError,
    condition,
    error_text,
    esc,
    parse_frame,
    q,
)
from monitor.probes.xmpp.transport import connect_error

if TYPE_CHECKING:
    from monitor.probes.xmpp.session import XmppSettings

__all__ = ["BoshTransport"]


class BoshTransport:
    """XEP-0124/XEP-0206: XMPP over HTTP long polling, one request at a time."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        query: dict[str, str],
        origin: str,
        settings: XmppSettings,
    ) -> None:
        self.session = session
        self.url = url.update_query(query)
        self.headers = {
            "User-Agent": settings.user_agent,
            "Origin": origin,
            "Content-Type": "text/xml; charset=utf-8",
        }
        self.ssl: ssl.SSLContext | bool = (
            (settings.ssl_context or True) if self.url.scheme == "https" else False
        )
        self.rid = secrets.randbelow(2**40) + 2**20
        self.sid: str | None = None
        self.domain = ""
        self.inbox: deque[Element] = deque()
        self.closed = False

    async def post(self, attrs: str, payload: str = "") -> None:
        self.rid += 1
        sid = f' sid="{esc(self.sid)}"' if self.sid else ""
        body = (
            f'<body xmlns="{NS_HTTPBIND}" xmlns:xmpp="{NS_XBOSH}" rid="{self.rid}"{sid} {attrs}>'
            f"{payload}</body>"
        )
        try:
            async with self.session.post(
                self.url,
                data=body.encode(),
                headers=self.headers,
                ssl=self.ssl,
                allow_redirects=False,
            ) as resp:
                if resp.status != 200:
                    raise XmppError(Reason.HTTP_STATUS, f"BOSH request answered HTTP {resp.status}")
                data = b""
                while len(data) <= MAX_FRAME:
                    chunk = await resp.content.read(MAX_FRAME + 1 - len(data))
                    if not chunk:
                        break
                    data += chunk
        except aiohttp.ClientError as exc:
            raise connect_error(exc, self.url, "BOSH") from None
        answer = parse_frame(data)
        if answer.tag != q(NS_HTTPBIND, "body"):
            raise XmppError(Reason.XML_ERROR, "BOSH answer is not a <body>")
        if answer.get("type") == "terminate":
            self.closed = True
            cond = answer.get("condition", "")[:64]
            raise XmppError(Reason.STREAM_ERROR, f"BOSH session ended: {cond}".strip())
        if self.sid is None:
            new_sid = answer.get("sid")
            if not new_sid or len(new_sid) > 128:
                raise XmppError(Reason.XML_ERROR, "BOSH answer without a session id")
            self.sid = new_sid
        for child in answer:
            if child.tag == q(NS_STREAMS, "error"):
                cond = condition(child, NS_STREAM_ERRORS)
                text = error_text(child, NS_STREAM_ERRORS)
                raise XmppError(Reason.STREAM_ERROR, f"stream error {cond} {text}".strip())
            self.inbox.append(child)

    async def open(self, to: str, restart: bool) -> None:
        self.domain = to
        if self.sid is None:
            await self.post(
                f'to="{esc(to)}" xml:lang="en" wait="10" hold="1" ver="1.6" '
                'xmpp:version="1.0" content="text/xml; charset=utf-8"'
            )
        else:
            await self.post(f'to="{esc(to)}" xml:lang="en" xmpp:restart="true"')

    async def send(self, xml: str) -> None:
        await self.post("", xml)

    async def recv(self) -> Element:
        while not self.inbox:
            await self.post("")  # an empty request: the server answers when it has data
        return self.inbox.popleft()

    async def close_stream(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(XmppError):
                await self.post('type="terminate"')

    async def abort(self) -> None:
        self.closed = True
