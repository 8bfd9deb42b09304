"""BOSH (XEP-0124/XEP-0206): the fallback transport where WebSockets do not pass."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections import deque
from typing import TYPE_CHECKING, Final
from xml.etree.ElementTree import Element

import aiohttp
from yarl import URL

from monitor.checks.signalling.xmpp.framing import (
    MAX_FRAME,
    NS_HTTPBIND,
    NS_STREAM_ERRORS,
    NS_STREAMS,
    NS_XBOSH,
    condition,
    error_text,
    esc,
    parse_frame,
    q,
)
from monitor.checks.signalling.xmpp.transport import CLOSE_WAIT, connect_error
from monitor.model import Reason
from monitor.net import NetError
from monitor.net.addresses import reaching

if TYPE_CHECKING:
    from monitor.checks.signalling.xmpp.settings import XmppSettings

__all__ = ["BoshTransport"]

# Requests open at once: one held by the server (hold="1") and one more.
_MAX_OPEN: Final = 2


class BoshTransport:
    """XEP-0124/XEP-0206: XMPP over HTTP long polling.

    A request is never given up half way: a step that stops waiting (the end
    of ``settle``, a timeout) leaves its request open, and what the server
    answers on it lands in the inbox, where the next step reads it (the
    answer to a leave may come on the long poll held during settle). Sending
    a stanza does not wait for its request's answer either, since the server
    may hold that request as its next long poll. At most two requests are
    open at once (``hold="1"``). ``abort`` always ends a session
    the server still holds with ``terminate``, whatever happened before, so
    no session is left to the server's inactivity timeout.
    """

    def arrived(self) -> float | None:
        """Not noted over BOSH: a step ends when its coroutine resumes."""
        return None

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
        # The session is shared by every ladder: the address rule goes with each
        # request (monitor.net.addresses.reaching), none for the server's own host.
        reach = settings.reach
        self._reach = None if reach is None or reach.exempts(url.raw_host or "") else reach
        self.rid = secrets.randbelow(2**40) + 2**20
        self.sid: str | None = None
        self.domain = ""
        self.inbox: deque[Element] = deque()
        # The session is over: the server ended it, or we sent terminate.
        self.closed = False
        self._open: set[asyncio.Task[None]] = set()
        self._answered = asyncio.Event()  # set whenever a request ends
        # Requests whose caller stopped waiting, and the first failure among them.
        self._orphans: set[asyncio.Task[None]] = set()
        self._failure: NetError | None = None

    async def _exchange(self, rid: int, attrs: str, payload: str) -> None:
        sid = f' sid="{esc(self.sid)}"' if self.sid else ""
        body = (
            f'<body xmlns="{NS_HTTPBIND}" xmlns:xmpp="{NS_XBOSH}" rid="{rid}"{sid} {attrs}>'
            f"{payload}</body>"
        )
        try:
            with reaching(self._reach):
                async with self.session.post(
                    self.url,
                    data=body.encode(),
                    headers=self.headers,
                    ssl=self.ssl,
                    allow_redirects=False,
                ) as resp:
                    if resp.status != 200:
                        raise NetError(
                            Reason.HTTP_STATUS, f"BOSH request answered HTTP {resp.status}"
                        )
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
            raise NetError(Reason.XML_ERROR, "BOSH answer is not a <body>")
        if answer.get("type") == "terminate":
            self.closed = True
            cond = answer.get("condition", "")[:64]
            raise NetError(Reason.STREAM_ERROR, f"BOSH session ended: {cond}".strip())
        if self.sid is None:
            new_sid = answer.get("sid")
            if not new_sid or len(new_sid) > 128:
                raise NetError(Reason.XML_ERROR, "BOSH answer without a session id")
            self.sid = new_sid
        for child in answer:
            if child.tag == q(NS_STREAMS, "error"):
                cond = condition(child, NS_STREAM_ERRORS)
                text = error_text(child, NS_STREAM_ERRORS)
                raise NetError(Reason.STREAM_ERROR, f"stream error {cond} {text}".strip())
            self.inbox.append(child)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._open.discard(task)
        self._answered.set()
        if task in self._orphans:
            self._orphans.discard(task)
            self._note(task)

    def _note(self, task: asyncio.Task[None]) -> None:
        """Keep the failure of a request nobody waits for, for the next ``recv``."""
        if task.cancelled() or self._failure is not None:
            return
        exc = task.exception()
        if isinstance(exc, NetError):
            self._failure = exc
        elif exc is not None:
            self._failure = NetError(Reason.CONNECTION_CLOSED, f"BOSH: {type(exc).__name__}")

    async def _wait_for_an_answer(self) -> None:
        self._answered.clear()
        await self._answered.wait()

    async def _start(self, attrs: str, payload: str, waited: bool) -> asyncio.Task[None]:
        while len(self._open) >= _MAX_OPEN:
            await self._wait_for_an_answer()
        self.rid += 1
        task = asyncio.ensure_future(self._exchange(self.rid, attrs, payload))
        self._open.add(task)
        if not waited:
            self._orphans.add(task)
        task.add_done_callback(self._ended)
        return task

    async def post(self, attrs: str, payload: str = "") -> None:
        """Send one request and wait for its answer; a caller that stops waiting
        leaves it open (its answer then lands in the inbox)."""
        task = await self._start(attrs, payload, waited=True)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                self._note(task)
            else:
                self._orphans.add(task)
            raise

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
        """Send a stanza without waiting for its request's answer: the server may
        hold that request as its long poll; whatever it answers lands in the inbox."""
        await self._start("", xml, waited=False)

    async def recv(self) -> Element:
        while not self.inbox:
            if self._failure is not None:
                raise self._failure
            if self._open:  # a request an earlier step stopped waiting for
                await self._wait_for_an_answer()
            else:  # an empty request: the server answers when it has data
                await self.post("")
        return self.inbox.popleft()

    async def close_stream(self) -> None:
        await self._terminate()

    async def _terminate(self) -> None:
        if self.closed or self.sid is None:
            return
        self.closed = True
        # The server answers it, and every request it holds, with terminate.
        with contextlib.suppress(NetError):
            await self.post('type="terminate"')

    async def abort(self) -> None:
        """End the session: terminate if the server still holds it (bounded), then
        drop what is still open."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await self._terminate()
        self.closed = True
        for task in list(self._open):
            task.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)
