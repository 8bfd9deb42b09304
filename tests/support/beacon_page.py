"""A test LMS page carrying the beacon's script tag, and lab members that answer
the browser later than the monitor.

``LmsPage`` serves ``/course`` (the tag only) and ``/meeting`` (the tag and a
meeting's iframe, as mod_jitsi embeds one) under a strict Content Security
Policy: no inline code, scripts from the monitor only.

``FarFromUsers`` is a lab server with ``/favicon.ico`` (what the script
times) that waits ``browser_delay`` before answering a browser (a
User-Agent naming Chrome); the monitor's own requests do not wait.
"""

from __future__ import annotations

import asyncio
import html

from aiohttp import web

from monitor.lab import LabOptions, LabServer


class FarFromUsers(LabServer):
    """A lab member whose answers to browsers take ``browser_delay`` longer."""

    def __init__(self, options: LabOptions, browser_delay: float, timing: bool) -> None:
        super().__init__(options)
        self.browser_delay = browser_delay
        self.timing = timing  # send Timing-Allow-Origin (Resource Timing's details)
        self.browser_requests = 0

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/favicon.ico", self._favicon)
        return app

    async def _favicon(self, request: web.Request) -> web.Response:
        if "Chrome" in request.headers.get("User-Agent", ""):
            self.browser_requests += 1
            await asyncio.sleep(self.browser_delay)
        response = await self._http("", "image/x-icon")  # the lab's own latency too
        if self.timing:
            response.headers["Timing-Allow-Origin"] = "*"
        return response


class LmsPage:
    """The LMS's pages on a loopback port, with the tag for ``monitor``'s beacon."""

    def __init__(self, monitor: str, members: list[str], pool: str = "moodle") -> None:
        self.monitor = monitor.rstrip("/")
        self.members = [m.rstrip("/") for m in members]
        self.pool = pool
        self.runner: web.AppRunner | None = None
        self.origin = ""

    def _tag(self) -> str:
        src = html.escape(f"{self.monitor}/beacon.js")
        return f'<script src="{src}" data-pool="{self.pool}" data-region="lab" async></script>'

    def _page(self, body: str) -> web.Response:
        csp = (
            "default-src 'none'; "
            f"script-src {self.monitor}; "
            f"connect-src {self.monitor} {' '.join(self.members)}; "
            f"frame-src {' '.join(self.members)}; img-src 'self'"
        )
        text = (
            "<!doctype html><html><head><meta charset=utf-8><title>Course</title>"
            f"{self._tag()}</head><body><h1>Course</h1>{body}</body></html>"
        )
        return web.Response(
            text=text, content_type="text/html", headers={"Content-Security-Policy": csp}
        )

    async def _course(self, _: web.Request) -> web.Response:
        return self._page("<p>Week 1</p>")

    async def _meeting(self, _: web.Request) -> web.Response:
        room = html.escape(f"{self.members[0]}/course-7-room")
        frame = f'<iframe id="jitsiConferenceFrame0" src="{room}" allow="camera; microphone">'
        return self._page(f"{frame}</iframe>")

    async def _favicon(self, _: web.Request) -> web.Response:
        return web.Response(status=204)

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_get("/course", self._course)
        app.router.add_get("/meeting", self._meeting)
        app.router.add_get("/favicon.ico", self._favicon)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.origin = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
