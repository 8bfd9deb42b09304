"""Tell the world when a pool changes its choice: webhooks and a command.

Each decision becomes one JSON event. Webhooks get it as a POST, retried
with backoff (an optional HMAC-SHA256 of the body in
``X-Jitsi-Monitor-Signature``); the command gets it in environment
variables. Deliveries run in the background and never hold up probing;
at shutdown the monitor waits briefly for those in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from monitor.ladder import PoolChange
from monitor.selector import Decision

__all__ = ["Notifier", "Webhook", "event_body"]

log = logging.getLogger(__name__)

ATTEMPTS = 5
BACKOFF = (1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    secret: str = ""  # for the signature; read from the environment at load
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"Webhook(url={_shown(self.url)!r}, secret=<hidden>)"


def event_body(decision: Decision, location: str, urls: dict[str, str]) -> dict[str, Any]:
    """The event as JSON-ready data."""
    return {
        "event": "failover" if decision.chosen else PoolChange.NONE_ELIGIBLE.value,
        "pool": decision.pool,
        "previous": decision.previous,
        "chosen": decision.chosen,
        "chosen_url": urls.get(decision.chosen) if decision.chosen else None,
        "reason": decision.reason,
        "detail": decision.detail,
        "at": decision.at,
        "at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(decision.at)),
        "location": location,
    }


class Notifier:
    """Delivers events; create inside the running loop, ``close()`` at the end."""

    def __init__(
        self,
        webhooks: list[Webhook],
        command: list[str],
        *,
        user_agent: str,
        command_timeout: float = 30.0,
    ) -> None:
        self.webhooks = webhooks
        self.command = command
        self.command_timeout = command_timeout
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._queues: dict[str, deque[dict[str, Any]]] = {}
        self._workers: dict[str, asyncio.Future[None]] = {}

    def submit(self, event: dict[str, Any]) -> None:
        """Queue ``event``; a pool's events are delivered one after the other, in order,
        so a command never applies an older choice after a newer one."""
        pool = str(event.get("pool"))
        self._queues.setdefault(pool, deque()).append(event)
        if pool not in self._workers:
            task = asyncio.ensure_future(self._drain(pool))
            self._workers[pool] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, pool: str) -> None:
        queue = self._queues[pool]
        try:
            while queue:
                event = queue.popleft()
                body = json.dumps(event, sort_keys=True).encode()
                await asyncio.gather(*(self._post(hook, body) for hook in self.webhooks))
                if self.command:
                    await self._run(event, body)
        finally:
            del self._workers[pool]

    async def close(self, wait: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=wait)
            for task in list(self._tasks):
                task.cancel()
        if self._session is not None:
            await self._session.close()

    async def _post(self, hook: Webhook, body: bytes) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "X-Jitsi-Monitor-Event": "failover",
        }
        if hook.secret:
            digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Jitsi-Monitor-Signature"] = f"sha256={digest}"
        for attempt in range(ATTEMPTS):
            problem = ""
            try:
                async with self._session.post(
                    hook.url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=hook.timeout),
                    allow_redirects=False,
                ) as resp:
                    if 200 <= resp.status < 300:
                        log.info("webhook %s took the event", _shown(hook.url))
                        return
                    problem = f"HTTP {resp.status}"
                    if 400 <= resp.status < 500 and resp.status != 429:
                        break  # the receiver refuses it: retrying will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            if attempt + 1 < ATTEMPTS:
                log.warning("webhook %s: %s; retrying", _shown(hook.url), problem)
                await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
        log.error("webhook %s: the event was not delivered (%s)", _shown(hook.url), problem)

    async def _run(self, event: dict[str, Any], body: bytes) -> None:
        # Only what a script needs: the monitor's own environment holds secrets.
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        for key in ("pool", "previous", "chosen", "chosen_url", "reason", "detail", "location"):
            env[f"JITSI_MONITOR_{key.upper()}"] = str(event.get(key) or "")
        env["JITSI_MONITOR_EVENT"] = body.decode()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            log.error("command %s cannot start: %s", self.command[0], exc.strerror or exc)
            return
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.command_timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.error(
                "command %s took longer than %gs: killed", self.command[0], self.command_timeout
            )
            return
        except asyncio.CancelledError:  # shutdown: do not leave it running
            proc.kill()
            await proc.wait()
            raise
        tail = out.decode(errors="replace").strip()[-500:]
        if proc.returncode == 0:
            log.info("command %s ran for pool %s", self.command[0], event["pool"])
        else:
            log.error("command %s exited with %s: %s", self.command[0], proc.returncode, tail)


def _shown(url: str) -> str:
    """A webhook URL fit for the log: its path may hold the receiver's secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
