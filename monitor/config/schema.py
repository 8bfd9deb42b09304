"""The schema of ``servers.yaml`` (pydantic models) and the resolved ``Target``.

Unknown keys are errors: a typo must not silently fall back to a default.

A server's per-family blocks (``signalling:``, ``jwt:``, ``media:``, and
whatever family comes next) are not written out here: ``ServerConfig`` and
``DefaultSettings`` take one field per family of ``FAMILIES`` that has a
``settings`` model, named after the family (``family_blocks``). A block of
a server is optional; a family whose model has a default for every key also
has its block in ``defaults:``. mypy sees the models without those fields,
so code reads a block through the typed accessor ``block(Model)`` (and
``setting(server, defaults, Model)`` for the server's, else the default).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)

from monitor.checks import FAMILIES, LADDER, Family
from monitor.checks.media.settings import MediaSettings, resolve_media
from monitor.checks.signalling.settings import SignallingSettings, joins
from monitor.checks.web.configjs import Limits
from monitor.config.beacon import BeaconSettings
from monitor.config.ha import HaConfig
from monitor.config.moodle import MoodleConfig
from monitor.config.pages import HistorySettings, StatusSettings
from monitor.config.server_sources import ServerSourceConfig, check_labels
from monitor.config.sharding import shards
from monitor.config.values import (
    NAME,
    Duration,
    Shard,
    Size,
    check_interval,
    check_timeout,
    parse_duration,
    parse_shard,
    server_url,
    url_pattern,
)
from monitor.config.webhook import Webhook
from monitor.domain import Target, TokenKey
from monitor.ladder import DEFAULT_REQUIRE
from monitor.moodle.database import Password
from monitor.selector import PoolSettings

__all__ = [
    "MonitorConfig",
    "PoolConfig",
    "PoolMembers",
    "ServerConfig",
    "ServerSourceConfig",
    "SignallingSettings",
    "Target",
    "family_blocks",
    "setting",
    "shard_of",
]

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Blocks(_Strict):
    """A model with a block per family (made by ``family_blocks``)."""

    # Each family's block name, by its settings model (set by ``family_blocks``).
    block_names: ClassVar[dict[type[Any], str]] = {}

    def block(self, kind: type[M]) -> M | None:
        """The block of the family whose settings model is ``kind`` (None: not written)."""
        name = self.block_names.get(kind)
        value = None if name is None else getattr(self, name, None)
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"the {name} block is a {type(value).__name__}")
        return value


def family_blocks(
    name: str, base: type[_Blocks], *, defaults: bool, families: tuple[Family, ...] = FAMILIES
) -> type[_Blocks]:
    """``base`` with a field for each block of ``families``, in family order.

    ``defaults``: only the families whose model has a default for every key,
    each block filled with its defaults (the ``defaults:`` of a config);
    else every family's, None when not written (a server's).
    """
    fields: dict[str, Any] = {}
    for family in families:
        model = family.settings
        if model is None:
            continue
        if not defaults:
            fields[family.name] = (model | None, None)
        elif not any(f.is_required() for f in model.model_fields.values()):
            fields[family.name] = (model, model())
    made: type[_Blocks] = create_model(name, __base__=base, __module__=__name__, **fields)
    made.block_names = {
        f.settings: f.name for f in families if f.settings is not None and f.name in fields
    }
    return made


class TlsSettings(_Strict):
    """How the certificate of a server is checked."""

    verify: bool = True
    ca_file: Path | None = None


class _DefaultFields(_Blocks):
    """Values every server takes unless it sets its own (the families' blocks aside)."""

    interval: Duration = 60.0
    timeout: Duration = 15.0
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    tls: TlsSettings = TlsSettings()

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        return check_interval(v)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        return check_timeout(v)


class _ServerFields(_Blocks):
    """One Jitsi Meet server as written in servers.yaml (the families' blocks aside)."""

    name: str
    url: str
    kind: Literal["public", "self_hosted", "jaas"] = "self_hosted"
    interval: Duration | None = None
    timeout: Duration | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    tls: TlsSettings | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.fullmatch(v):
            raise ValueError(
                "a server name is 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return server_url(v)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_labels(v)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float | None) -> float | None:
        return None if v is None else check_interval(v)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None) -> float | None:
        return None if v is None else check_timeout(v)


# mypy checks the code against the models without the families' blocks (it
# cannot see fields made at run time), so nothing reads a block as an attribute.
if TYPE_CHECKING:
    _DefaultBlocks = _DefaultFields
    _ServerBlocks = _ServerFields
else:
    _DefaultBlocks = family_blocks("_DefaultBlocks", _DefaultFields, defaults=True)
    _ServerBlocks = family_blocks("_ServerBlocks", _ServerFields, defaults=False)


class DefaultSettings(_DefaultBlocks):
    """Values every server takes unless it sets its own."""


class ServerConfig(_ServerBlocks):
    """One Jitsi Meet server as written in servers.yaml."""


def setting(server: ServerConfig, defaults: DefaultSettings, kind: type[M]) -> M:
    """The server's block of the family whose model is ``kind``, else the default's."""
    found = server.block(kind) or defaults.block(kind)
    if found is None:
        raise KeyError(f"no {kind.__name__} block, and no default for it")
    return found


class ListenSettings(_Strict):
    """Where ``serve`` listens. Loopback by default: put a proxy in front to expose it."""

    host: str = "127.0.0.1"
    port: int = Field(default=9711, ge=0, le=65535)


class DnsSettings(_Strict):
    """Name servers to ask instead of the system's (``host`` or ``host:port``)."""

    nameservers: list[str] = Field(default_factory=list)

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, v: list[str]) -> list[str]:
        for entry in v:
            if entry.startswith("["):  # [IPv6]:port
                host, _, port = entry[1:].partition("]")
                port = port.removeprefix(":")
            elif entry.count(":") == 1:  # IPv4:port
                host, _, port = entry.partition(":")
            else:
                host, port = entry, ""
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address (optionally with :port)"
                ) from None
            if port and not (port.isdigit() and 0 < int(port) < 65536):
                raise ValueError(f"{entry!r} has a bad port")
        return v


# The defaults of failover.min_improvement: a member must be nearer by both.
# 20 %: one smoothed round trip wobbles by a few percent from round to round.
# 10 ms: loopback and LAN differences are well under 1 ms, and the jitter of
# one path across the Internet is a few ms; smoothed over rounds (EWMA), a
# lasting 10 ms is a real difference in distance, not noise.
DEFAULT_IMPROVEMENT = (0.2, 0.010)


def parse_improvement(value: object) -> tuple[float, float]:
    """``min_improvement``: a percentage, a duration, or both (``20% 10ms``).

    A bare number below 1 is a ratio (``0.2``), as before durations were
    allowed; the part not given keeps its default.
    """
    ratio, seconds = DEFAULT_IMPROVEMENT
    if isinstance(value, int | float) and not isinstance(value, bool):
        parts: list[object] = [value]
    elif isinstance(value, str):
        parts = list(value.replace(",", " ").replace(" and ", " ").split())
    elif isinstance(value, list):
        parts = list(value)
    else:
        parts = [value]
    if not 1 <= len(parts) <= 2:
        raise ValueError("give a percentage, a duration or both, e.g. '20% 10ms'")
    for part in parts:
        if isinstance(part, int | float) and not isinstance(part, bool):
            ratio = float(part)
        elif isinstance(part, str) and part.strip().endswith("%"):
            try:
                ratio = float(part.strip()[:-1]) / 100
            except ValueError:
                raise ValueError(f"{part!r} is not a percentage") from None
        else:
            seconds = parse_duration(part)
    if not 0 <= ratio < 1:
        raise ValueError("the percentage must be at least 0% and under 100%")
    if seconds > 10:
        raise ValueError("the duration must be at most 10s")
    return ratio, seconds


def _requirement(word: str) -> str:
    """A word of a pool's ``require`` list: one the ladder table declares."""
    if word not in LADDER.requirements:
        close = difflib.get_close_matches(word, list(LADDER.requirements), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"{word!r} is not a requirement; {hint}use {', '.join(LADDER.requirements)}"
        )
    return word


Requirement = Annotated[str, AfterValidator(_requirement)]


class FailoverSettings(_Strict):
    """When a pool changes its choice for a better server."""

    after: int = Field(default=3, ge=1, le=100)
    # How much nearer a member must be to count as better: a ratio and seconds.
    min_improvement: Annotated[tuple[float, float], BeforeValidator(parse_improvement)] = (
        DEFAULT_IMPROVEMENT
    )
    hold_down: Duration = 600.0


class PoolMembers(_Strict):
    """Members of a pool chosen by what they are, not by name."""

    # Every server whose labels include all of these is a member.
    label: dict[str, str] = Field(min_length=1, max_length=16)


class PoolConfig(_Strict):
    """A set of servers that can stand in for each other, e.g. for one LMS."""

    name: str
    # Members by name; ``members`` adds those chosen by label (servers from
    # ``server_sources`` come and go, and join or leave the pool with them).
    servers: list[str] = Field(default_factory=list)
    members: PoolMembers | None = None
    require: list[Requirement] = Field(default_factory=lambda: list(DEFAULT_REQUIRE))
    embedding: bool = False
    tiers: list[list[str]] = Field(default_factory=list)
    failover: FailoverSettings = FailoverSettings()
    # Whose round trip scores members: the monitor's, or the users' (docs/beacon.md).
    nearest: Literal["monitor", "users"] = "monitor"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.fullmatch(v):
            raise ValueError("a pool name is 1 to 64 letters, digits, '.', '_' or '-'")
        return v

    def has_members(self) -> bool:
        """Whether the pool names members (MonitorConfig checks it: the site pool of
        ``moodle:`` may name none, its members come from Moodle)."""
        return bool(self.servers) or self.members is not None

    def member_names(self, servers: list[ServerConfig]) -> tuple[str, ...]:
        """The pool's members among ``servers``: those named (in the pool's
        order), then those whose labels match ``members.label`` (in config order)."""
        known = {s.name for s in servers}
        names = [n for n in self.servers if n in known]
        if self.members is not None:
            want = self.members.label.items()
            names += [s.name for s in servers if want <= s.labels.items()]
        return tuple(dict.fromkeys(names))

    def settings(self, servers: list[ServerConfig] | None = None) -> PoolSettings:
        """The selector's settings; members resolved among ``servers`` (None:
        the named ones, as written)."""
        return PoolSettings(
            name=self.name,
            servers=tuple(self.servers) if servers is None else self.member_names(servers),
            require=tuple(self.require),
            embedding=self.embedding,
            tiers=tuple(tuple(t) for t in self.tiers),
            after=self.failover.after,
            min_improvement=self.failover.min_improvement[0],
            min_improvement_seconds=self.failover.min_improvement[1],
            hold_down=self.failover.hold_down,
            nearest=self.nearest,
        )


class WebhookConfig(_Strict):
    """Where to POST failover events."""

    url: str
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a webhook url starts with https:// or http://")
        if parts.username or parts.password:
            raise ValueError("a webhook url must not carry a user name or password")
        return v


class ProbeSettings(_Strict):
    """What ``GET /probe`` may probe besides the configured servers."""

    # URL patterns; ``*`` matches within one part of the URL (no ``/``).
    allow: list[str] = Field(default_factory=list)
    kind: Literal["public", "self_hosted", "jaas"] = "public"
    # On-demand ladders at once, apart from the schedule's ``concurrency``.
    concurrency: int = Field(default=8, ge=1, le=1000)

    @field_validator("allow")
    @classmethod
    def _allow(cls, v: list[str]) -> list[str]:
        for pattern in v:
            url_pattern(pattern)
        return v


class ConfigJsSettings(_Strict):
    """The sandbox config.js runs in: how long and how much memory one evaluation may use."""

    time_limit: Duration = 0.25
    memory_limit: Size = 64 * 1024 * 1024

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, v: float) -> float:
        if not 0.01 <= v <= 10:
            raise ValueError("time_limit must be between 10ms and 10s")
        return v

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, v: int) -> int:
        if not 4 * 1024 * 1024 <= v <= 1024 * 1024 * 1024:
            raise ValueError("memory_limit must be between 4MiB and 1GiB")
        return v

    def limits(self) -> Limits:
        return Limits(time=self.time_limit, memory=self.memory_limit)


class NotifySettings(_Strict):
    """Who hears of a pool's change of choice."""

    webhooks: list[WebhookConfig] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    command_timeout: Duration = 30.0
    # A sink failing longer than this drops its events older than this.
    max_age: Duration = 86400.0
    # A sink with more events waiting than this drops its oldest.
    max_pending: int = Field(default=1000, ge=1, le=100_000)

    @field_validator("command_timeout")
    @classmethod
    def _command_timeout(cls, v: float) -> float:
        if not 0 < v <= 3600:
            raise ValueError("command_timeout must be more than 0s and at most 1h")
        return v

    @field_validator("max_age")
    @classmethod
    def _max_age(cls, v: float) -> float:
        if v < 60:
            raise ValueError("max_age must be at least 1m")
        return v


class MonitorConfig(_Strict):
    """The whole servers.yaml."""

    location: str = Field(default="default", min_length=1, max_length=64)
    contact: str | None = Field(default=None, max_length=200)
    listen: ListenSettings = ListenSettings()
    concurrency: int = Field(default=64, ge=1, le=10000)
    dns: DnsSettings = DnsSettings()
    defaults: DefaultSettings = DefaultSettings()
    servers: list[ServerConfig] = Field(default_factory=list)
    # More servers, from files and HTTP endpoints that change (monitor.sources).
    server_sources: list[ServerSourceConfig] = Field(default_factory=list, max_length=64)
    pools: list[PoolConfig] = Field(default_factory=list)
    notify: NotifySettings = NotifySettings()
    probe: ProbeSettings = ProbeSettings()
    configjs: ConfigJsSettings = ConfigJsSettings()
    # "i/n": probe only this monitor's shard of the servers (pools kept whole).
    shard: str | None = None
    # Where serve keeps pool choices and smoothed RTTs across restarts
    # (relative to the config file); empty: not kept.
    state_file: str = "jitsi-monitor-state.json"
    # The history file behind the status pages, and the pages themselves.
    history: HistorySettings = HistorySettings()
    status: StatusSettings = StatusSettings()
    # Moodle with mod_jitsi: its servers, its tokens and its switch (docs/moodle.md).
    moodle: MoodleConfig | None = None
    # Several serve sharing one PostgreSQL: one leader decides (monitor.ha); off when absent.
    ha: HaConfig | None = None
    # Users' round trips from the LMS page (/beacon.js, /beacon).
    beacon: BeaconSettings = BeaconSettings()

    @field_validator("contact")
    @classmethod
    def _contact(cls, v: str | None) -> str | None:
        if v is not None and any(c in v for c in "\r\n()"):
            raise ValueError("contact must be one line without parentheses")
        return v

    # Directory of the file the config came from; relative paths start there.
    _base_dir: Path = PrivateAttr(default_factory=Path)
    # Token keys by server, with their secrets, read when the config is loaded.
    _token_keys: dict[str, TokenKey] = PrivateAttr(default_factory=dict)
    # The resolved servers, once asked for (after the keys above are read).
    _targets: list[Target] | None = PrivateAttr(default=None)

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str | None) -> str | None:
        if v is not None:
            parse_shard(v)
        return v

    @model_validator(mode="after")
    def _pools_have_members(self) -> MonitorConfig:
        site = self.moodle.pool if self.moodle is not None else None
        for pool in self.pools:
            if not pool.has_members() and pool.name != site:
                raise ValueError(
                    f"pool {pool.name!r}: a pool names its servers, or its members by label, "
                    "or both (only moodle.pool's members may all come from Moodle)"
                )
        return self

    def shard_spec(self) -> Shard | None:
        return parse_shard(self.shard) if self.shard else None

    def state_path(self, shard: Shard | None = None) -> Path | None:
        """Where serve keeps its state; each shard of a fleet keeps its own file."""
        if not self.state_file:
            return None
        path = self._base_dir / self.state_file
        if shard is not None and shard.count > 1:
            tag = f".shard-{shard.index}-of-{shard.count}"
            path = path.with_name(path.stem + tag + path.suffix)
        return path

    def ha_password(self) -> Password | None:
        """The ha block's database password, read now (ValueError saying what is wrong)."""
        return None if self.ha is None else self.ha.password(self._base_dir)

    def history_path(self, shard: Shard | None = None) -> Path | None:
        """Where serve keeps its history; each shard of a fleet keeps its own file."""
        if not self.history.file:
            return None
        path = self._base_dir / self.history.file
        if shard is not None and shard.count > 1:
            tag = f".shard-{shard.index}-of-{shard.count}"
            path = path.with_name(path.stem + tag + path.suffix)
        return path

    def webhooks(self) -> list[Webhook]:
        """The webhooks with their secrets, read from the environment now."""
        return [
            Webhook(
                url=w.url,
                secret=os.environ.get(w.secret_env, "") if w.secret_env else "",
                timeout=w.timeout,
            )
            for w in self.notify.webhooks
        ]

    def targets(self) -> list[Target]:
        """The servers with every default filled in (made once: the config is frozen)."""
        if self._targets is None:
            self._targets = self._make_targets()
        return list(self._targets)

    def _make_targets(self) -> list[Target]:
        return [self._target(s) for s in self.servers]

    def _target(self, s: ServerConfig) -> Target:
        d = self.defaults
        signalling = setting(s, d, SignallingSettings)
        return Target(
            name=s.name,
            url=s.url,
            kind=s.kind,
            interval=s.interval or d.interval,
            timeout=s.timeout or d.timeout,
            labels=tuple(sorted(s.labels.items())),
            tls_verify=(s.tls or d.tls).verify,
            ca_file=_under(self._base_dir, (s.tls or d.tls).ca_file),
            max_body_bytes=d.max_body_bytes,
            max_redirects=d.max_redirects,
            signalling=signalling.enabled,
            focus=signalling.enabled and signalling.focus,
            join=joins(signalling, s.kind),
            token_key=self._token_keys.get(s.name),
            media=resolve_media(setting(s, d, MediaSettings), s.kind, signalling.enabled),
        )

    def fleet(self, shard: Shard | None = None) -> tuple[list[Target], list[PoolSettings]]:
        """The servers and pools to probe: all of them, or one shard's (pools whole)."""
        targets = self.targets()
        pools = [p.settings(self.servers) for p in self.pools]
        if shard is None or shard.count == 1:
            return targets, pools
        mine = shard_of(self, shard.count)
        return (
            [t for t in targets if mine.get(t.name) == shard.index],
            # A pool without members now is judged by the first shard.
            [p for p in pools if mine.get(p.servers[0] if p.servers else "", 1) == shard.index],
        )

    def allowed_url(self, url: str) -> bool:
        """Whether ``/probe`` may probe this (checked) URL."""
        return any(url_pattern(p).fullmatch(url) for p in self.probe.allow)

    def url_target(self, url: str) -> Target:
        """A server that is not configured, probed by URL with the defaults."""
        d = self.defaults
        signalling = d.block(SignallingSettings) or SignallingSettings()
        media = d.block(MediaSettings) or MediaSettings()
        return Target(
            name=url,
            url=url,
            kind=self.probe.kind,
            interval=d.interval,
            timeout=d.timeout,
            tls_verify=d.tls.verify,
            ca_file=_under(self._base_dir, d.tls.ca_file),
            max_body_bytes=d.max_body_bytes,
            max_redirects=d.max_redirects,
            signalling=signalling.enabled,
            focus=signalling.enabled and signalling.focus,
            join=joins(signalling, self.probe.kind),
            confined=True,
            media=resolve_media(media, self.probe.kind, signalling.enabled),
        )


def _under(base: Path, path: Path | None) -> Path | None:
    return None if path is None else base / path


def shard_of(config: MonitorConfig, count: int) -> dict[str, int]:
    """Each server's shard (1 to ``count``): servers that share a pool share a shard."""
    groups = [list(pool.member_names(config.servers)) for pool in config.pools]
    return shards((s.name for s in config.servers), groups, count)
