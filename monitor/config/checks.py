"""Checks that span several fields of a config, each placed at the field to fix."""

from __future__ import annotations

import math
import os
import ssl
from pathlib import Path
from typing import Final

from monitor.checks.jwt.settings import JwtSettings
from monitor.checks.signalling.settings import SignallingSettings
from monitor.config.errors import Where
from monitor.config.schema import MonitorConfig, setting

__all__ = ["LADDER_STEPS", "cross_checks", "needed_timeout"]


def _pool_checks(config: MonitorConfig) -> list[tuple[Where, str]]:
    found: list[tuple[Where, str]] = []
    names = {s.name for s in config.servers}
    seen: set[str] = set()
    # Servers from server_sources are not known yet: a pool may name them.
    sourced = bool(config.server_sources)
    for index, pool in enumerate(config.pools):
        if pool.name in seen:
            found.append((("pools", index, "name"), f"pool name {pool.name!r} is used twice"))
        seen.add(pool.name)
        for where, server in enumerate(pool.servers):
            if server not in names and not sourced:
                found.append((("pools", index, "servers", where), f"no server named {server!r}"))
        if len(set(pool.servers)) != len(pool.servers):
            found.append((("pools", index, "servers"), "a server is listed twice"))
        for t, tier in enumerate(pool.tiers):
            for server in tier:
                if server not in pool.servers and pool.members is None:
                    found.append(
                        (("pools", index, "tiers", t), f"{server!r} is not a server of this pool")
                    )
    return found


def cross_checks(config: MonitorConfig) -> list[tuple[Where, str]]:
    """Checks that span several fields, each placed at the field to fix."""
    found: list[tuple[Where, str]] = _pool_checks(config)
    for index, pool in enumerate(config.pools):
        if pool.nearest == "users" and not config.beacon.origins:
            found.append(
                (
                    ("pools", index, "nearest"),
                    "nearest: users needs beacon.origins (the pages allowed to send "
                    "users' timings; see docs/beacon.md)",
                )
            )
    sources: set[str] = set()
    for index, source in enumerate(config.server_sources):
        if source.name in sources:
            found.append(
                (("server_sources", index, "name"), f"source name {source.name!r} is used twice")
            )
        sources.add(source.name)
    for index, hook in enumerate(config.notify.webhooks):
        if hook.secret_env and not os.environ.get(hook.secret_env):
            shown = hook.secret_env if len(hook.secret_env) <= 40 else "it names"
            found.append(
                (
                    ("notify", "webhooks", index, "secret_env"),
                    f"environment variable {shown} is not set",
                )
            )
    seen: set[str] = set()
    ca_files: dict[Path, str | None] = {}
    defaults = config.defaults
    for index, server in enumerate(config.servers):
        if server.name in seen:
            found.append((("servers", index, "name"), f"server name {server.name!r} is used twice"))
        seen.add(server.name)
        timeout = server.timeout or defaults.timeout
        interval = server.interval or defaults.interval
        if timeout > interval:
            field = "timeout" if server.timeout is not None else "interval"
            found.append(
                (
                    ("servers", index, field),
                    f"timeout {timeout:g}s is longer than the interval {interval:g}s",
                )
            )
        found += _ladder_time(config, index, timeout)
        tls = server.tls or defaults.tls
        if tls.ca_file is not None:
            loc: Where = (
                ("servers", index, "tls", "ca_file")
                if server.tls is not None
                else ("defaults", "tls", "ca_file")
            )
            path = config._base_dir / tls.ca_file
            if path not in ca_files:
                ca_files[path] = _ca_problem(path)
            problem = ca_files[path]
            if problem is not None:
                found.append((loc, problem))
    return found


# What a healthy server's steps take besides the waits: the three fetches,
# the login, the focus request, the join (a second, over a long distance).
LADDER_STEPS: Final = 1.0


def needed_timeout(settle: float, settles: int) -> float:
    """The shortest timeout a ladder with ``settles`` waits of ``settle`` fits in.

    The steps and the waits to watch roles settle run one after the other,
    and the signalling keeps a quarter of what is left back to leave the
    room (``monitor.checks.signalling.xmpp.session.LEAVE_GRACE``): a ladder shorter than
    this is cut in its settle and reported as ``muc: timeout``.
    """
    return math.ceil((settles * settle + LADDER_STEPS) * 4 / 3 * 10) / 10


def _ladder_time(config: MonitorConfig, index: int, timeout: float) -> list[tuple[Where, str]]:
    """A timeout too short for the server's token checks to watch roles settle."""
    server = config.servers[index]
    signalling = setting(server, config.defaults, SignallingSettings)
    jwt = server.block(JwtSettings)
    joins = signalling.join if signalling.join is not None else server.kind != "public"
    if jwt is None or not signalling.enabled or not joins or jwt.settle <= 0:
        return []
    # the main ladder settles; the full matrix's moderator: true case settles again
    settles = 2 if jwt.matrix == "full" else 1
    needed = needed_timeout(jwt.settle, settles)
    if timeout >= needed:
        return []
    waits = "twice (the main ladder, then the moderator case)" if settles == 2 else "once"
    where: Where = (
        ("servers", index, "timeout") if server.timeout is not None else ("servers", index, "jwt")
    )
    return [
        (
            where,
            f"timeout {timeout:g}s is shorter than the {needed:g}s this server's ladder needs: "
            f"jwt.settle {jwt.settle:g}s {waits}, {LADDER_STEPS:g}s for the steps, and a "
            f"quarter kept back to leave the room; raise the timeout to at least {needed:g}s "
            "or lower jwt.settle",
        )
    ]


def _ca_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"no such file: {path}"
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        return f"not a PEM file of CA certificates: {exc}"
    return None
