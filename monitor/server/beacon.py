"""``/beacon.js``, ``/beacon/pools/{pool}`` and ``/beacon``: the HTTP side of the users' timings.

- ``/beacon.js``: the script, cached for five minutes, no cookie, loadable
  cross-origin (``Cross-Origin-Resource-Policy: cross-origin``).
- ``/beacon/pools/{pool}``: what the script times, to allowed origins only
  (CORS): the members' names and URLs and the sampling period.
- ``POST /beacon``: a beacon; 204 when taken, else 400, 403, 413 or 429 with
  the reason (``monitor.beacon.validate.REASONS``). The body is read only
  up to its limit; the client's address goes to the limiter and no further
  (behind a reverse proxy on the same host: ``X-Forwarded-For``'s last entry).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

from aiohttp import web

from monitor import escape
from monitor.beacon import Beacons, Rejected
from monitor.beacon.script import script
from monitor.beacon.validate import MAX_BODY

__all__ = ["BEACONS_KEY", "add_beacon_routes"]

BEACONS_KEY = web.AppKey("beacons", Beacons)

_STATUS = {
    "origin": 403,
    "rate_limited": 429,
    "too_large": 413,
}


async def _script(_: web.Request) -> web.Response:
    return web.Response(
        body=script(),
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


def _cors(beacons: Beacons, request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    headers = {"Vary": "Origin", "Cache-Control": "no-store"}
    if beacons.allowed(origin) and origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
    return headers


async def _pool(request: web.Request) -> web.Response:
    beacons = request.app[BEACONS_KEY]
    headers = _cors(beacons, request)
    if "Access-Control-Allow-Origin" not in headers:
        raise web.HTTPForbidden(text="this page's origin is not in beacon.origins\n")
    name = request.match_info["pool"]
    members = beacons.members(name)
    if members is None:
        raise web.HTTPNotFound(text=f"no pool named {escape.plain(name, 64)!r}\n", headers=headers)
    body = {
        "pool": name,
        "period": beacons.policy.period,
        "members": [{"server": s, "url": url} for s, url in members.items()],
    }
    return web.json_response(body, dumps=escape.to_json, headers=headers)


# A body must have come whole within this long.
BODY_TIMEOUT = 10.0


async def _read(request: web.Request) -> bytes:
    """The body, up to one byte more than allowed (which tells one that is too large)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while size <= MAX_BODY:
                chunk = await request.content.read(MAX_BODY + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except TimeoutError:
        raise _Unfinished("malformed") from None
    return b"".join(chunks)


class _Unfinished(Rejected):
    """A body that did not come whole in time: refused without reaching ``Beacons``."""


def client_address(request: web.Request) -> str:
    """The client's address: the connection's, or, when that is loopback (a reverse
    proxy on the same host, as uvicorn trusts by default), the last address the
    proxy appended to ``X-Forwarded-For``.

    The last entry of the *last* header line: a proxy that appends a line of its
    own (HAProxy's ``option forwardfor``) leaves the client's lines before it, and
    those say whatever the client likes."""
    remote = request.remote or ""
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        local = False
    else:
        # A dual-stack socket names an IPv4 peer ``::ffff:127.0.0.1``, which
        # ``ipaddress`` does not count as loopback.
        mapped = peer.ipv4_mapped if isinstance(peer, ipaddress.IPv6Address) else None
        local = (mapped or peer).is_loopback
    lines = request.headers.getall("X-Forwarded-For", [])
    if local and lines:
        return lines[-1].rsplit(",", 1)[-1].strip()
    return remote


async def _beacon(request: web.Request) -> web.Response:
    beacons = request.app[BEACONS_KEY]
    origin = request.headers.get("Origin")
    now = time.time()
    try:
        if (request.content_length or 0) > MAX_BODY:
            raise _Unfinished("too_large")
        body = await _read(request)
        beacons.receive(body, origin, client_address(request), now)
    except Rejected as exc:
        status = _STATUS.get(exc.reason, 400)
        headers = _cors(beacons, request)
        if isinstance(exc, _Unfinished):
            beacons.rejected[exc.reason] += 1  # ``receive`` never saw it: counted here
        if isinstance(exc, _Unfinished) or status == 413:
            # The rest of the body is not read: closing spares the connection
            # aiohttp's lingering wait for it, and the next request's framing.
            headers["Connection"] = "close"
        return web.Response(status=status, text=f"{exc.reason}\n", headers=headers)
    return web.Response(status=204, headers=_cors(beacons, request))


def add_beacon_routes(app: web.Application, beacons: Beacons) -> None:
    app[BEACONS_KEY] = beacons
    app.router.add_get("/beacon.js", _script)
    app.router.add_get("/beacon/pools/{pool}", _pool)
    app.router.add_post("/beacon", _beacon)
