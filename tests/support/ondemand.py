"""Configs of many servers, for the on-demand /probe and the shards."""

from __future__ import annotations


def fleet_config(servers: int, pools: str = "", url: str = "https://s{i}.example.org/") -> str:
    lines = ["servers:"]
    for i in range(servers):
        lines += [f"  - name: s{i}", f"    url: {url.format(i=i)}"]
    return "\n".join(lines) + "\n" + pools
