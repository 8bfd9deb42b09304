"""Checks that span several fields of a config, each placed at the field to fix."""

from __future__ import annotations

import os
import ssl

from monitor.config.errors import Where
from monitor.config.schema import MonitorConfig

__all__ = ["cross_checks"]


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
    for index, (server, target) in enumerate(zip(config.servers, config.targets(), strict=True)):
        if server.name in seen:
            found.append((("servers", index, "name"), f"server name {server.name!r} is used twice"))
        seen.add(server.name)
        if target.timeout > target.interval:
            field = "timeout" if server.timeout is not None else "interval"
            found.append(
                (
                    ("servers", index, field),
                    f"timeout {target.timeout:g}s is longer than the interval {target.interval:g}s",
                )
            )
        if target.ca_file is not None:
            loc: Where = (
                ("servers", index, "tls", "ca_file")
                if server.tls is not None
                else ("defaults", "tls", "ca_file")
            )
            if not target.ca_file.is_file():
                found.append((loc, f"no such file: {target.ca_file}"))
            else:
                try:
                    ssl.create_default_context(cafile=str(target.ca_file))
                except (ssl.SSLError, OSError, ValueError) as exc:
                    found.append((loc, f"not a PEM file of CA certificates: {exc}"))
    return found
