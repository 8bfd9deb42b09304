"""aiohttp application serving what the monitor knows; it only reads State.

No answer names the server software (aiohttp adds ``Server: Python/3.x
aiohttp/3.x`` by default: it is taken out before the headers are sent).
``/metrics`` is gzipped when the scraper accepts it (Prometheus always does).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import re
import zlib

from aiohttp import web

from monitor import __version__, escape
from monitor.beacon import Beacons
from monitor.config.pages import StatusSettings
from monitor.metrics import CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, Exposition
from monitor.ondemand import Busy, OnDemand, Refused
from monitor.server.beacon import add_beacon_routes
from monitor.state import HaHealth, State
from monitor.status import Pages
from monitor.views import pool_dict, report_dict

__all__ = ["make_app"]

STATE_KEY = web.AppKey("state", State)
_EXPOSITION_KEY = web.AppKey("exposition", Exposition)
ONDEMAND_KEY = web.AppKey("ondemand", OnDemand)
PAGES_KEY = web.AppKey("pages", Pages)


def _exposition(request: web.Request) -> tuple[bool, str]:
    """Whether the scraper asks for OpenMetrics, and the content type to answer with."""
    openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
    return openmetrics, OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE


# Pieces of the exposition joined per write: some 100 KiB at a time.
_BATCH = 1024
# How long a scrape may hold the garbage collector off (see _GcHold).
GC_HOLD = 1.0


class _GcHold:
    """Keeps automatic garbage collection off while scrapes are answered.

    With 10,000 servers a full collection walks some 600,000 objects and
    takes 0.1-0.3 s; one that starts while the 55 MB answer is being sent
    makes that scrape as much slower. While a scrape is answered (at most
    ``GC_HOLD`` seconds, so a client that reads slowly cannot keep it off),
    collections wait; the next allocation after it starts the one that was
    due. Scrapes that overlap share the hold.
    """

    def __init__(self) -> None:
        self._holders = 0

    def hold(self) -> None:
        if self._holders == 0 and not gc.isenabled():
            return  # turned off by someone else: not ours to turn back on
        self._holders += 1
        gc.disable()

    def release(self) -> None:
        if self._holders == 0:
            return
        self._holders -= 1
        if self._holders == 0:
            gc.enable()


# The collector is the process's: one hold for every app in it.
_GC = _GcHold()

# zlib's fastest level: the exposition repeats itself so much that it still
# comes out some 13 times smaller, at a fifth of the CPU of level 6 (bench/RESULTS.md).
GZIP_LEVEL = 1
# Bytes handed to the compressor at a time.
_GZIP_CHUNK = 1 << 20


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip;q=0`` refuses it,
    and so does ``*;q=0`` without a word on gzip)."""
    wildcard: bool | None = None
    for item in header.lower().split(","):
        name, _, params = item.partition(";")
        name = name.strip()
        if name not in ("gzip", "x-gzip", "*"):
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name != "*":
            return quality > 0  # gzip named: its own quality decides
        wildcard = quality > 0
    return bool(wildcard)


def gzip_parts(parts: list[bytes]) -> list[bytes]:
    """One gzip stream of the pieces, joined a megabyte at a time (in a worker thread:
    zlib lets the event loop run meanwhile)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip wrapper
    out: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for part in parts:
        batch.append(part)
        size += len(part)
        if size >= _GZIP_CHUNK:
            out.append(compressor.compress(b"".join(batch)))
            batch, size = [], 0
    out.append(compressor.compress(b"".join(batch)))
    out.append(compressor.flush())
    return [piece for piece in out if piece]


async def _no_server_header(_: web.Request, response: web.StreamResponse) -> None:
    """Leave out the Server header: it names the library and its version."""
    response.headers.popall("Server", None)


async def _metrics(request: web.Request) -> web.StreamResponse:
    """The exposition, written batch by batch: a large fleet's body (tens of
    MB) is never held whole in memory a second time."""
    openmetrics, content_type = _exposition(request)
    hold = _GC
    hold.hold()
    held = [True]

    def release() -> None:
        if held[0]:
            held[0] = False
            hold.release()

    # On a timer, not between writes: a client that stops reading blocks a
    # write for as long as it likes, and must not keep the collector off.
    timer = asyncio.get_running_loop().call_later(GC_HOLD, release)
    try:
        parts = request.app[_EXPOSITION_KEY].parts(openmetrics)
        headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
        if accepts_gzip(request.headers.get("Accept-Encoding", "")):
            # A tenth of the bytes to send; the body decompresses to the same text.
            parts = await asyncio.to_thread(gzip_parts, parts)
            headers["Content-Encoding"] = "gzip"
        response = web.StreamResponse(headers=headers)
        response.content_length = sum(map(len, parts))
        await response.prepare(request)
        if request.method != "HEAD":  # a HEAD answer has the headers only
            for start in range(0, len(parts), _BATCH):
                await response.write(b"".join(parts[start : start + _BATCH]))
        await response.write_eof()
    finally:
        timer.cancel()
        release()
    return response


async def _probe(request: web.Request) -> web.Response:
    """One ladder now; its own series only (the multi-target pattern)."""
    ondemand = request.app.get(ONDEMAND_KEY)
    if ondemand is None:
        raise web.HTTPNotFound(text="on-demand probing is not available here\n")
    name = request.query.get("target")
    if not name:
        raise web.HTTPBadRequest(text="give the server to probe: /probe?target=NAME\n")
    try:
        target = ondemand.target(name, request.query.get("checks"))
        timeout = ondemand.timeout(
            target, request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
        )
        report = await ondemand.probe(target, timeout)
    except Refused as exc:
        raise web.HTTPBadRequest(text=f"{escape.plain(exc)}\n") from None
    except Busy as exc:
        raise web.HTTPServiceUnavailable(
            text=f"{escape.plain(exc)}\n", headers={"Retry-After": "5"}
        ) from None
    openmetrics, content_type = _exposition(request)
    body = ondemand.render(target, report, openmetrics)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json(
        {
            "status": "ok",
            "version": __version__,
            "location": state.location,
            "shard": state.shard,
            "servers": len(state.targets),
            "probed": len(state.reports),
            "config_reload_ok": state.config_reload_ok,
            "sources": [source.as_dict() for source in state.sources.values()],
            "moodle": state.moodle.as_dict() if state.moodle is not None else None,
            **({} if state.ha is None else {"ha": _ha(state.ha)}),
        }
    )


def _ha(ha: HaHealth) -> dict[str, object]:
    """High availability on /healthz: this instance's role, the epoch, who leads."""
    return {
        "role": ha.role,
        "epoch": ha.epoch,
        "instance": ha.instance,
        "leader": ha.leader or None,
        "shards": ha.shards,
        "instances": ha.instances,
        "database": "up" if ha.database_up else "down",
    }


# JSON answers: every non-ASCII character escaped (monitor.escape.to_json).
_json = functools.partial(web.json_response, dumps=escape.to_json)

_ROOM = re.compile(r"[A-Za-z0-9._-]{1,128}")


async def _api_servers(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    servers = [report_dict(t, state.reports.get(n)) for n, t in state.targets.items()]
    return _json({"location": state.location, "servers": servers})


async def _api_pools(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    pools = [pool_dict(state, name) for name in state.pools]
    return _json({"location": state.location, "pools": pools})


async def _api_pool(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    name = request.match_info["pool"]
    if name not in state.pools:
        raise web.HTTPNotFound(text=f"no pool named {escape.plain(name, 64)!r}\n")
    return _json(pool_dict(state, name))


async def _go(request: web.Request) -> web.Response:
    """Send a person to the pool's chosen server, to the room of the path."""
    state = request.app[STATE_KEY]
    name, room = request.match_info["pool"], request.match_info["room"]
    if name not in state.pools:
        raise web.HTTPNotFound(text=f"no pool named {escape.plain(name, 64)!r}\n")
    if not _ROOM.fullmatch(room):
        raise web.HTTPBadRequest(text="a room name is letters, digits, '.', '_' or '-'\n")
    pool = pool_dict(state, name)
    chosen = pool["chosen"]
    if chosen is None or chosen not in state.targets:
        why = "; ".join(f"{c['server']}: {c['why']}" for c in pool["candidates"])
        raise web.HTTPServiceUnavailable(
            text=f"pool {name} has no eligible server right now ({why})\n",
            headers={"Retry-After": "60"},
        )
    raise web.HTTPFound(state.targets[chosen].url + room)


# -- the status pages (rendered by monitor.status) ----------------------------


async def _index(request: web.Request) -> web.Response:
    html = await request.app[PAGES_KEY].index(request.query)
    return web.Response(text=html, content_type="text/html")


async def _server_page(request: web.Request) -> web.Response:
    name = request.match_info["server"]
    html = await request.app[PAGES_KEY].server(name, request.query)
    if html is None:
        raise web.HTTPNotFound(text=f"no server named {escape.plain(name, 64)!r}\n")
    return web.Response(text=html, content_type="text/html")


async def _pool_page(request: web.Request) -> web.Response:
    name = request.match_info["pool"]
    html = await request.app[PAGES_KEY].pool(name, request.query)
    if html is None:
        raise web.HTTPNotFound(text=f"no pool named {escape.plain(name, 64)!r}\n")
    return web.Response(text=html, content_type="text/html")


# Badges are embedded in other sites' pages: short caching, no cookies.
_BADGE_HEADERS = {"Cache-Control": "max-age=60", "Content-Type": "image/svg+xml; charset=utf-8"}


async def _server_badge(request: web.Request) -> web.Response:
    name = request.match_info["server"]
    svg = await request.app[PAGES_KEY].server_badge(name)
    if svg is None:
        raise web.HTTPNotFound(text=f"no server named {escape.plain(name, 64)!r}\n")
    return web.Response(text=svg, headers=_BADGE_HEADERS)


async def _pool_badge(request: web.Request) -> web.Response:
    name = request.match_info["pool"]
    svg = request.app[PAGES_KEY].pool_badge(name)
    if svg is None:
        raise web.HTTPNotFound(text=f"no pool named {escape.plain(name, 64)!r}\n")
    return web.Response(text=svg, headers=_BADGE_HEADERS)


def make_app(
    state: State,
    ondemand: OnDemand | None = None,
    pages: Pages | None = None,
    beacons: Beacons | None = None,
) -> web.Application:
    """The web application for ``serve``; ``/probe`` needs ``ondemand``; the
    status pages show history when ``pages`` has it; ``/beacon`` needs ``beacons``."""
    app = web.Application()
    app.on_response_prepare.append(_no_server_header)
    app[STATE_KEY] = state
    app[PAGES_KEY] = pages if pages is not None else Pages(state, StatusSettings())
    app[_EXPOSITION_KEY] = Exposition(state)
    if ondemand is not None:
        app[ONDEMAND_KEY] = ondemand
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/probe", _probe)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/v1/servers", _api_servers)
    app.router.add_get("/api/v1/pools", _api_pools)
    app.router.add_get("/api/v1/pools/{pool}", _api_pool)
    app.router.add_get("/go/{pool}/{room}", _go)
    _add_pages(app)
    if beacons is not None:
        add_beacon_routes(app, beacons)
    return app


def _add_pages(app: web.Application) -> None:
    app.router.add_get("/", _index)
    app.router.add_get("/servers/{server}", _server_page)
    app.router.add_get("/pools/{pool}", _pool_page)
    app.router.add_get("/badge/pool/{pool}.svg", _pool_badge)
    app.router.add_get("/badge/{server}.svg", _server_badge)


def make_status_app(pages: Pages, beacons: Beacons | None = None) -> web.Application:
    """The application of ``status.listen``: the status pages and badges, and
    the beacon's paths (they face the users' browsers too); every other path
    answers 404."""
    app = web.Application()
    app.on_response_prepare.append(_no_server_header)
    app[PAGES_KEY] = pages
    _add_pages(app)
    if beacons is not None:
        add_beacon_routes(app, beacons)
    return app
