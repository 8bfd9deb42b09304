"""Load and validate ``servers.yaml``.

- ``values``: durations, server URLs, URL patterns, shards, names;
- ``schema``: the pydantic models of the file, and the resolved ``Target``;
- ``jwt``: the ``jwt`` block of a server (tokens, and how far they are tested);
- ``keys``: token keys, their secrets read from the environment or files;
- ``sharding``: which shard of the fleet each server belongs to;
- ``checks``: checks that span several fields;
- ``errors``: problems, each with its file, line and field;
- ``load``: YAML with positions, then the schema, then the checks.
"""

from monitor.config.errors import ConfigError, Problem
from monitor.config.load import load_config, parse_config
from monitor.config.schema import MonitorConfig, Target, shard_of
from monitor.config.values import (
    Shard,
    parse_duration,
    parse_shard,
    parse_size,
    server_url,
    url_pattern,
)

__all__ = [
    "ConfigError",
    "MonitorConfig",
    "Problem",
    "Shard",
    "Target",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_shard",
    "parse_size",
    "server_url",
    "shard_of",
    "url_pattern",
]
