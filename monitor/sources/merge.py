"""A config's own servers together with the servers its sources give now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor.config import MonitorConfig
from monitor.config.schema import ServerConfig
from monitor.domain import TokenKey

__all__ = ["Given", "merge"]


@dataclass(frozen=True)
class Given:
    """What one source gives: validated servers, and token keys for those with ``jwt``."""

    source: str
    servers: tuple[ServerConfig, ...] = ()
    token_keys: dict[str, TokenKey] = field(default_factory=dict)


def merge(
    base: MonitorConfig, given: Sequence[Given]
) -> tuple[MonitorConfig, dict[str, list[str]]]:
    """The config with every source's servers added after its own, and what
    each source gave that was left out (a name or URL already taken).

    The config's own servers come first, then the sources in the order the
    config lists them: an earlier one keeps a name or URL.
    """
    names = {s.name: "the config" for s in base.servers}
    urls = {s.url: s.name for s in base.servers}
    extra: list[ServerConfig] = []
    keys = dict(base._token_keys)
    left_out: dict[str, list[str]] = {}
    for part in given:
        for server in part.servers:
            if server.name in names:
                why = f"{server.name}: the name is taken by {names[server.name]}"
            elif server.url in urls:
                why = f"{server.name}: {server.url} is probed already, as {urls[server.url]}"
            else:
                names[server.name] = f"source {part.source}"
                urls[server.url] = server.name
                extra.append(server)
                if server.name in part.token_keys:
                    keys[server.name] = part.token_keys[server.name]
                continue
            left_out.setdefault(part.source, []).append(why)
    if not extra:
        return base, left_out
    merged = base.model_copy(update={"servers": [*base.servers, *extra]})
    merged._token_keys = keys
    # model_copy copies the private cache of resolved servers: the base's (a reload
    # resolves it in its worker thread) would hide the servers added here.
    merged._targets = None
    return merged, left_out
