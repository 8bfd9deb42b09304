"""Deliver the outbox's events: each webhook and the command on its own.

Every sink has one worker that takes its queue's events in order, so a
webhook that does not answer never holds up the command or another webhook.
A failed delivery is tried again (backoff up to a minute) until it is taken
or the outbox's bounds drop it; a receiver's 4xx (but 408 and 429) refuses
it for good. Webhooks get the event as a POST (``X-Jitsi-Monitor-Event-Id``;
an HMAC-SHA256 of the body in ``X-Jitsi-Monitor-Signature`` with a secret);
the command gets it in environment variables, and is skipped for an event
that a newer one of the same pool has superseded (only the latest choice
matters to it). The command runs in a process group of its own, killed
whole at its timeout; at most ``OUTPUT_LIMIT`` bytes of its output are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp

from monitor import escape
from monitor.config.webhook import Webhook, shown_url
from monitor.ladder import PoolChange
from monitor.outbox import Event, Outbox
from monitor.selector import Decision

__all__ = ["COMMAND", "Notifier", "Webhook", "event_body", "webhook_sink"]

log = logging.getLogger(__name__)

# Seconds between attempts of a failing sink: doubling, at most a minute.
BACKOFF: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
# What is kept of a command's output (the rest is read and discarded).
OUTPUT_LIMIT: Final = 64 * 1024
# After the command exits, how long its output may still come (a child it
# left behind may hold the pipe open).
OUTPUT_GRACE: Final = 0.5
COMMAND: Final = "command"


def webhook_sink(url: str) -> tuple[str, str]:
    """A webhook's key in the outbox (from its whole URL) and its label (without the path)."""
    digest = hashlib.sha256(url.encode()).hexdigest()
    return f"webhook:{digest[:16]}", f"webhook {shown_url(url)}#{digest[:6]}"


def event_body(decision: Decision, location: str, urls: dict[str, str]) -> dict[str, Any]:
    """The event as JSON-ready data (the outbox adds its ``id``)."""
    return {
        "event": "failover" if decision.chosen else PoolChange.NONE_ELIGIBLE.value,
        "pool": decision.pool,
        "previous": decision.previous,
        "chosen": decision.chosen,
        "chosen_url": urls.get(decision.chosen) if decision.chosen else None,
        "reason": decision.reason.value,
        "detail": decision.detail,
        "at": decision.at,
        "at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(decision.at)),
        "location": location,
    }


class Notifier:
    """One delivery worker per sink; create inside the running loop, ``close()`` at the end.

    ``save`` is called after a sink is done with an event, so a restart does
    not deliver it again (at least once: a crash in between may).
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        user_agent: str,
        command_timeout: float = 30.0,
        save: Callable[[], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.user_agent = user_agent
        self.command_timeout = command_timeout
        self.save = save
        self.command: list[str] = []
        self.exits: Counter[str] = Counter()  # the command's exit codes ("timeout" too)
        self._webhooks: dict[str, Webhook] = {}
        # Sinks of the monitor's own (the Moodle switch): key -> (label, deliver).
        self.own: dict[str, tuple[str, Callable[[Event], Awaitable[str]]]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._closing = asyncio.Event()
        # With HA (monitor.ha): awaited before each delivery; True once the event
        # is stored and this instance leads, False to wait until start() wakes it.
        self.ready: Callable[[], Awaitable[bool]] | None = None

    def configure(self, webhooks: list[Webhook], command: list[str]) -> None:
        """Adopt the sinks of a (re)loaded config; call ``outbox.restore`` after the first."""
        self._webhooks = {webhook_sink(w.url)[0]: w for w in webhooks}
        self.command = command
        sinks = {key: webhook_sink(w.url)[1] for key, w in self._webhooks.items()}
        if command:
            sinks[COMMAND] = COMMAND
        sinks.update({key: label for key, (label, _) in self.own.items()})
        self.outbox.set_sinks(sinks)
        for key in list(self._workers):
            if key not in sinks:
                self._workers.pop(key).cancel()
                self._wake.pop(key, None)

    def start(self) -> None:
        """Start a worker for every sink: pending events (from before a restart) go first."""
        if self._closing.is_set():
            return
        for key in self.outbox.queues:
            worker = self._workers.get(key)
            if worker is None or worker.done():
                self._wake[key] = asyncio.Event()
                self._workers[key] = asyncio.ensure_future(self._work(key))
            self._wake[key].set()

    def submit(self, decision: Decision, body: dict[str, Any]) -> Event:
        """Put an event into the outbox and wake the sinks (they start after the
        caller has saved the state: nothing here awaits)."""
        event = self.outbox.add(decision.pool, decision.at, body)
        self.start()
        return event

    async def close(self, grace: float = 2.0) -> None:
        """Let deliveries in flight finish for up to ``grace`` seconds; the rest stays
        in the outbox for the next start."""
        self._closing.set()
        for wake in self._wake.values():
            wake.set()
        workers = list(self._workers.values())
        if workers:
            _, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        if self._session is not None:
            await self._session.close()

    # -- a sink's worker ---------------------------------------------------------

    async def _work(self, key: str) -> None:
        failures = 0
        while not self._closing.is_set():
            event = self.outbox.head(key)
            if event is None:
                wake = self._wake[key]
                wake.clear()
                await wake.wait()
                continue
            if self.ready is not None:
                wake = self._wake[key]
                wake.clear()
                if not await self.ready():
                    await wake.wait()
                    continue
                event = self.outbox.head(key)  # the outbox may have changed meanwhile
                if event is None:
                    continue
            try:
                result = await self._deliver(key, event)
                if result == "failed":
                    self.outbox.failed(key, time.time())
                else:
                    self.outbox.finish(key, event, result)
                if self.save is not None:
                    self.save()
            except asyncio.CancelledError:
                raise
            except Exception:  # our own bug: log it, keep the worker alive
                log.exception("delivering event %s failed", event.id)
                result = "failed"
            if result == "failed":
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
            else:
                failures = 0

    async def _deliver(self, key: str, event: Event) -> str:
        if key == COMMAND:
            newer = self.outbox.newer_of_pool(key, event)
            if newer is not None:
                log.info(
                    "command: event %s of pool %s skipped: superseded by %s",
                    event.id,
                    event.pool,
                    newer.id,
                )
                return "superseded"
            return await self._run(event)
        if key in self.own:
            return await self.own[key][1](event)
        hook = self._webhooks.get(key)
        if hook is None:
            return "failed"
        return await self._post(hook, event)

    async def _post(self, hook: Webhook, event: Event) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = json.dumps(event.body, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "X-Jitsi-Monitor-Event": "failover",
            "X-Jitsi-Monitor-Event-Id": event.id,
        }
        if hook.secret:
            digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Jitsi-Monitor-Signature"] = f"sha256={digest}"
        shown = shown_url(hook.url)
        try:
            async with self._session.post(
                hook.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=hook.timeout),
                allow_redirects=False,
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "webhook %s: event %s: %s; trying again", shown, event.id, type(exc).__name__
            )
            return "failed"
        if 200 <= status < 300:
            log.info("webhook %s took event %s", shown, event.id)
            return "delivered"
        if 400 <= status < 500 and status not in (408, 429):
            log.error(
                "webhook %s refused event %s (HTTP %d): not tried again", shown, event.id, status
            )
            return "refused"
        log.warning("webhook %s: event %s: HTTP %d; trying again", shown, event.id, status)
        return "failed"

    async def _run(self, event: Event) -> str:
        # Only what a script needs: the monitor's own environment holds secrets.
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        for name in ("pool", "previous", "chosen", "chosen_url", "reason", "detail", "location"):
            env[f"JITSI_MONITOR_{name.upper()}"] = str(event.body.get(name) or "")
        env["JITSI_MONITOR_EVENT_ID"] = event.id
        env["JITSI_MONITOR_EVENT"] = json.dumps(event.body, sort_keys=True)
        program = self.command[0]
        # Our own pipe for its output, so that waiting for the command ends when
        # it exits, not when the last child it left behind closes the pipe.
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,  # its own process group, killed whole
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the event
            os.close(read_fd)
            log.error("command %s cannot start: %s", program, getattr(exc, "strerror", None) or exc)
            self.exits["cannot_start"] += 1
            return "failed"
        finally:
            os.close(write_fd)
        reader = asyncio.StreamReader()
        pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        kept = bytearray()
        output = asyncio.ensure_future(_read_bounded(reader, kept, OUTPUT_LIMIT))
        try:
            try:
                code = await asyncio.wait_for(proc.wait(), self.command_timeout)
            except TimeoutError:
                _kill_group(proc.pid)
                await proc.wait()
                self.exits["timeout"] += 1
                log.error(
                    "command %s took longer than %gs for event %s: killed with its children",
                    program,
                    self.command_timeout,
                    event.id,
                )
                return "failed"
            except asyncio.CancelledError:  # shutdown: do not leave it running
                _kill_group(proc.pid)
                await proc.wait()
                raise
            # A child it left behind may hold the pipe open: stop reading soon.
            await asyncio.wait({output}, timeout=OUTPUT_GRACE)
        finally:
            output.cancel()
            pipe.close()
        self.exits[str(code)] += 1
        first = _first_lines(bytes(kept))
        if code == 0:
            log.info("command %s ran for event %s (pool %s)", program, event.id, event.pool)
            return "delivered"
        log.error("command %s exited with %s for event %s: %s", program, code, event.id, first)
        return "failed"


async def _read_bounded(stream: asyncio.StreamReader, kept: bytearray, limit: int) -> None:
    """Read to the end; keep the first ``limit`` bytes in ``kept``, discard the rest."""
    while chunk := await stream.read(64 * 1024):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _first_lines(output: bytes, lines: int = 5, width: int = 200) -> str:
    """The first lines of a command's output, one line for the log, control characters shown."""
    text = output.decode(errors="replace")
    shown = [line[:width] for line in text.splitlines()[:lines]]
    return escape.plain(" | ".join(shown)) if shown else "(no output)"
