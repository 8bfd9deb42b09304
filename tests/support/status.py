"""Reading the status pages over HTTP."""

from __future__ import annotations

import aiohttp


async def get(base: str, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(base + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()
