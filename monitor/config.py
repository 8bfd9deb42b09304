"""Load and validate ``servers.yaml``.

Every problem is reported with the file, line and field it concerns, all at
once, so a person can fix a config in one pass. Unknown keys are errors (a
typo must not silently fall back to a default).
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import math
import os
import re
import ssl
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jwt
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from monitor.notify import Webhook
from monitor.probes.configjs import Limits
from monitor.probes.tokens import TokenKey, mint
from monitor.selector import PoolSettings

__all__ = [
    "ConfigError",
    "MonitorConfig",
    "Problem",
    "Target",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
]

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?")
_DURATION_MS = re.compile(r"(\d+(?:\.\d+)?)ms")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``90s``, ``5m``, ``1m30s``, ``500ms``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 60, '60s' or '5m'")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if m := _DURATION_MS.fullmatch(text):
            seconds = float(m.group(1)) / 1000
        elif _NUMBER.fullmatch(text):
            seconds = float(text)
        elif (m := _DURATION.fullmatch(text)) and text:
            hours, minutes, secs = (float(g) if g else 0.0 for g in m.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"{value!r} is not a duration; use seconds or a string such as '90s', '5m'"
        )
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)?", re.IGNORECASE)
_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2}
_UNITS["gb"] = 1000**3


def parse_size(value: object) -> int:
    """Bytes from a number or a string like ``64MiB``, ``512KiB``, ``1GiB``."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 67108864 or '64MiB'")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (m := _SIZE.fullmatch(value.strip())):
        size = float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
        if math.isfinite(size):
            return int(size)
    raise ValueError(f"{value!r} is not a size; use bytes or a string such as '64MiB'")


Size = Annotated[int, BeforeValidator(parse_size)]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED_LABELS = frozenset({"server", "location", "kind", "domain", "url", "check", "phase"})


def server_url(v: str) -> str:
    """A server's base URL, checked and ending in ``/``; ValueError says what is wrong."""
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https"):
        raise ValueError("url must start with https:// or http://")
    if not parts.hostname:
        raise ValueError("url has no host name")
    if parts.username or parts.password:
        raise ValueError("url must not carry a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("url must not have a query or fragment: give the base URL")
    if any(c.isspace() or ord(c) < 32 for c in v):
        raise ValueError("url must not contain spaces or control characters")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"url has a bad port: {exc}") from None
    return v if v.endswith("/") else v + "/"


def url_pattern(pattern: str) -> re.Pattern[str]:
    """A ``probe.allow`` pattern: ``*`` matches any run of characters but ``/``."""
    parts = urlsplit(pattern.replace("*", "x"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "a pattern is a URL starting with https:// or http://, e.g. https://*.example.org/"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("a pattern has no user name, query or fragment")
    body = "".join("[^/@?#]*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile(body + ("" if pattern.endswith("/") else "/"), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Shard:
    """This monitor's part of the fleet: shard ``index`` of ``count`` (1-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(value: str) -> Shard:
    """``"i/n"`` with 1 <= i <= n; ValueError says what is wrong."""
    m = re.fullmatch(r"\s*(\d{1,4})\s*/\s*(\d{1,4})\s*", value)
    if not m:
        raise ValueError(f"a shard is i/n, e.g. 1/3, not {value[:20]!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: i must be between 1 and n")
    return Shard(index, count)


def _check_interval(v: float) -> float:
    if not 1 <= v <= 86400:
        raise ValueError("interval must be between 1s and 24h")
    return v


def _check_timeout(v: float) -> float:
    if not 0 < v <= 3600:
        raise ValueError("timeout must be more than 0s and at most 1h")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsSettings(_Strict):
    """How the certificate of a server is checked."""

    verify: bool = True
    ca_file: Path | None = None


class SignallingSettings(_Strict):
    """How far the signalling (XMPP) part of the ladder goes for a server."""

    enabled: bool = True
    focus: bool = True
    # None: join for self-hosted and JaaS servers, not for public ones.
    join: bool | None = None


class JwtSettings(_Strict):
    """How to mint tokens for a server with JWT authentication (or a JaaS tenant).

    Key material is named, never written here: ``secret_env`` (an environment
    variable) or ``secret_file`` for HS*, ``private_key_file`` (PEM) for RS*.
    """

    app_id: str = Field(min_length=1, max_length=200)
    algorithm: Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512"] = "HS256"
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_file: Path | None = None
    private_key_file: Path | None = None
    key_id: str | None = Field(default=None, max_length=300)
    audience: str = "jitsi"
    subject: str | None = None
    lifetime: Duration = 300.0
    # full: also check that bad tokens are refused and how the moderator
    # claim is handled; valid_only: only that a valid token works.
    matrix: Literal["full", "valid_only"] = "full"
    # How long to watch a joined room for role changes before judging them.
    settle: Duration = 2.5
    # What the token says about its user, and more claims, as the platform sends them.
    user_name: str = Field(default="jitsi-monitor", max_length=200)
    user_email: str = Field(default="", max_length=200)
    features: dict[str, bool | str] = Field(default_factory=dict)
    claims: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("claims")
    @classmethod
    def _claims(cls, v: dict[str, object]) -> dict[str, object]:
        reserved = {"iss", "aud", "sub", "room", "exp", "nbf", "iat", "context", "moderator"}
        taken = sorted(reserved & set(v))
        if taken:
            raise ValueError(f"the monitor sets {', '.join(taken)} itself")
        return v

    @field_validator("settle")
    @classmethod
    def _settle(cls, v: float) -> float:
        if v > 10:
            raise ValueError("settle must be at most 10s")
        return v

    @field_validator("lifetime")
    @classmethod
    def _lifetime(cls, v: float) -> float:
        if not 30 <= v <= 3600:
            raise ValueError("lifetime must be between 30s and 1h")
        return v


class DefaultSettings(_Strict):
    """Values every server takes unless it sets its own."""

    interval: Duration = 60.0
    timeout: Duration = 15.0
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    tls: TlsSettings = TlsSettings()
    signalling: SignallingSettings = SignallingSettings()

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        return _check_interval(v)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float) -> float:
        return _check_timeout(v)


class ServerConfig(_Strict):
    """One Jitsi Meet server as written in servers.yaml."""

    name: str
    url: str
    kind: Literal["public", "self_hosted", "jaas"] = "self_hosted"
    interval: Duration | None = None
    timeout: Duration | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    tls: TlsSettings | None = None
    signalling: SignallingSettings | None = None
    jwt: JwtSettings | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
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
        for key in v:
            if not _LABEL.fullmatch(key) or key.startswith("__"):
                raise ValueError(f"label name {key!r} is not a valid Prometheus label name")
            if key in _RESERVED_LABELS:
                raise ValueError(f"label name {key!r} is used by the monitor itself")
        return v

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float | None) -> float | None:
        return None if v is None else _check_interval(v)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None) -> float | None:
        return None if v is None else _check_timeout(v)


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


def _percent(value: object) -> object:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage") from None
    return value


Requirement = Literal["web", "signalling", "focus", "muc", "jwt", "moderation"]
_DEFAULT_REQUIRE: tuple[Requirement, ...] = ("web", "signalling")


class FailoverSettings(_Strict):
    """When a pool changes its choice for a better server."""

    after: int = Field(default=3, ge=1, le=100)
    min_improvement: Annotated[float, BeforeValidator(_percent)] = Field(
        default=0.2, ge=0.0, lt=1.0
    )
    hold_down: Duration = 600.0


class PoolConfig(_Strict):
    """A set of servers that can stand in for each other, e.g. for one LMS."""

    name: str
    servers: list[str] = Field(min_length=1)
    require: list[Requirement] = Field(default_factory=lambda: list(_DEFAULT_REQUIRE))
    embedding: bool = False
    tiers: list[list[str]] = Field(default_factory=list)
    failover: FailoverSettings = FailoverSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("a pool name is 1 to 64 letters, digits, '.', '_' or '-'")
        return v

    def settings(self) -> PoolSettings:
        return PoolSettings(
            name=self.name,
            servers=tuple(self.servers),
            require=tuple(self.require),
            embedding=self.embedding,
            tiers=tuple(tuple(t) for t in self.tiers),
            after=self.failover.after,
            min_improvement=self.failover.min_improvement,
            hold_down=self.failover.hold_down,
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


class MonitorConfig(_Strict):
    """The whole servers.yaml."""

    location: str = Field(default="default", min_length=1, max_length=64)
    contact: str | None = Field(default=None, max_length=200)
    listen: ListenSettings = ListenSettings()
    concurrency: int = Field(default=64, ge=1, le=10000)
    dns: DnsSettings = DnsSettings()
    defaults: DefaultSettings = DefaultSettings()
    servers: list[ServerConfig] = Field(default_factory=list)
    pools: list[PoolConfig] = Field(default_factory=list)
    notify: NotifySettings = NotifySettings()
    probe: ProbeSettings = ProbeSettings()
    configjs: ConfigJsSettings = ConfigJsSettings()
    # "i/n": probe only this monitor's shard of the servers (pools kept whole).
    shard: str | None = None
    # Where serve keeps pool choices and smoothed RTTs across restarts
    # (relative to the config file); empty: not kept.
    state_file: str = "jitsi-monitor-state.json"

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

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str | None) -> str | None:
        if v is not None:
            parse_shard(v)
        return v

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
        """The servers with every default filled in."""
        d = self.defaults
        return [
            Target(
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
                signalling=(s.signalling or d.signalling).enabled,
                focus=(s.signalling or d.signalling).enabled
                and (s.signalling or d.signalling).focus,
                join=_joins(s.signalling or d.signalling, s.kind),
                token_key=self._token_keys.get(s.name),
            )
            for s in self.servers
        ]

    def fleet(self, shard: Shard | None = None) -> tuple[list[Target], list[PoolSettings]]:
        """The servers and pools to probe: all of them, or one shard's (pools whole)."""
        targets = self.targets()
        pools = [p.settings() for p in self.pools]
        if shard is None or shard.count == 1:
            return targets, pools
        mine = shard_of(self, shard.count)
        return (
            [t for t in targets if mine.get(t.name) == shard.index],
            [p for p in pools if mine.get(p.servers[0]) == shard.index],
        )

    def allowed_url(self, url: str) -> bool:
        """Whether ``/probe`` may probe this (checked) URL."""
        return any(url_pattern(p).fullmatch(url) for p in self.probe.allow)

    def url_target(self, url: str) -> Target:
        """A server that is not configured, probed by URL with the defaults."""
        d = self.defaults
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
            signalling=d.signalling.enabled,
            focus=d.signalling.enabled and d.signalling.focus,
            join=_joins(d.signalling, self.probe.kind),
            confined=True,
        )


def shard_of(config: MonitorConfig, count: int) -> dict[str, int]:
    """Each server's shard (1 to ``count``): servers that share a pool share a shard.

    Pools join their members into groups; a group goes to the shard its
    smallest name hashes to, so the split stays put as servers come and go.
    """
    parent = {s.name: s.name for s in config.servers}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for pool in config.pools:
        members = [m for m in pool.servers if m in parent]
        for other in members[1:]:
            a, b = root(members[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    out: dict[str, int] = {}
    for name in parent:
        digest = hashlib.sha256(root(name).encode()).digest()
        out[name] = int.from_bytes(digest[:8], "big") % count + 1
    return out


def _joins(settings: SignallingSettings, kind: str) -> bool:
    if not settings.enabled:
        return False
    return settings.join if settings.join is not None else kind != "public"


def _under(base: Path, path: Path | None) -> Path | None:
    return None if path is None else base / path


@dataclass(frozen=True, slots=True)
class Target:
    """A server to probe, with every setting resolved."""

    name: str
    url: str
    kind: str
    interval: float
    timeout: float
    labels: tuple[tuple[str, str], ...] = ()
    tls_verify: bool = True
    ca_file: Path | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    max_redirects: int = 5
    signalling: bool = True
    focus: bool = True
    join: bool = True
    token_key: TokenKey | None = None
    # Probed by URL on demand: redirects and signalling must stay on its origin.
    confined: bool = False


# -- errors -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """The config cannot be used; ``problems`` says why, each with its place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# -- loading --------------------------------------------------------------------

_Path = tuple[str | int, ...]


def _walk(
    node: yaml.Node, path: _Path, lines: dict[_Path, int], dups: list[tuple[_Path, int]]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in keys:
                dups.append((child, key_node.start_mark.line + 1))
            keys.add(key)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, dups)


def _field_name(loc: _Path) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: _Path) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc``, for 'did you mean' hints."""
    model: type[BaseModel] | None = MonitorConfig
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _inner_model(info.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _message(error: Any, loc: _Path) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            hint += f" (known keys: {', '.join(model.model_fields)})"
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def parse_config(text: str, file: str = "<config>", base_dir: Path | None = None) -> MonitorConfig:
    """Validate config text; raise ConfigError naming file, line and field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(file, line, "", f"not valid YAML: {problem}")]) from None
    if node is None or data is None:
        raise ConfigError([Problem(file, None, "", "the file is empty")])
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, "", "the top level must be a mapping of keys")])
    lines: dict[_Path, int] = {}
    dups: list[tuple[_Path, int]] = []
    _walk(node, (), lines, dups)
    if dups:
        raise ConfigError(
            [Problem(file, line, _field_name(loc), "key appears twice") for loc, line in dups]
        )
    try:
        config = MonitorConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            _problem(file, lines, tuple(e["loc"]), _message(e, tuple(e["loc"])))
            for e in exc.errors()
        ]
        raise ConfigError(problems) from None
    config._base_dir = base_dir or Path()
    found = _cross_checks(config)
    for index, server in enumerate(config.servers):
        if server.jwt is not None:
            key, errors = _token_key(server, config._base_dir)
            found += [(("servers", index, "jwt", *where), msg) for where, msg in errors]
            if key is not None:
                config._token_keys[server.name] = key
    problems = [_problem(file, lines, loc, msg) for loc, msg in found]
    if problems:
        raise ConfigError(problems)
    return config


def _problem(file: str, lines: dict[_Path, int], loc: _Path, message: str) -> Problem:
    line = None
    for cut in range(len(loc), -1, -1):
        line = lines.get(loc[:cut])
        if line is not None:
            break
    return Problem(file, line, _field_name(loc), message)


def _token_key(server: ServerConfig, base: Path) -> tuple[TokenKey | None, list[tuple[_Path, str]]]:
    """Read a server's key material; problems never quote the secret."""
    j = server.jwt
    assert j is not None
    errors: list[tuple[_Path, str]] = []
    hmac = j.algorithm.startswith("HS")
    material = ""
    if hmac:
        if (j.secret_env is None) == (j.secret_file is None):
            errors.append(((), f"{j.algorithm} needs exactly one of secret_env, secret_file"))
        elif j.secret_env is not None:
            material = os.environ.get(j.secret_env, "")
            if not material:
                # Named only when it looks like a name: a secret pasted here is not echoed.
                shown = j.secret_env if len(j.secret_env) <= 40 else "it names"
                errors.append((("secret_env",), f"environment variable {shown} is not set"))
        elif j.secret_file is not None:
            material = _read_secret(base / j.secret_file, ("secret_file",), errors)
        if j.private_key_file is not None:
            errors.append((("private_key_file",), f"{j.algorithm} uses a secret, not a key file"))
    else:
        if j.private_key_file is None:
            errors.append(((), f"{j.algorithm} needs private_key_file (a PEM private key)"))
        else:
            material = _read_secret(base / j.private_key_file, ("private_key_file",), errors)
            if material and "PRIVATE KEY" not in material:
                errors.append((("private_key_file",), "not a PEM private key"))
        if j.secret_env is not None or j.secret_file is not None:
            errors.append(((), f"{j.algorithm} signs with private_key_file, not a secret"))
        if not j.key_id:
            # Prosody fetches the public key by the kid ("'kid' claim is missing").
            errors.append((("key_id",), f"{j.algorithm} needs key_id (the kid of the key)"))
    jaas = server.kind == "jaas"
    if jaas:
        if j.algorithm != "RS256":
            errors.append((("algorithm",), "JaaS tokens are RS256"))
        if not j.app_id.startswith("vpaas-magic-cookie-"):
            errors.append((("app_id",), "a JaaS AppID starts with vpaas-magic-cookie-"))
        if not j.key_id or not j.key_id.startswith(f"{j.app_id}/"):
            errors.append((("key_id",), "JaaS needs key_id '<AppID>/<API key id>'"))
        if j.subject not in (None, j.app_id):
            errors.append((("subject",), "JaaS tokens have the AppID as their subject"))
    if errors:
        return None, errors
    key = TokenKey(
        algorithm=j.algorithm,
        key=material,
        key_id=j.key_id,
        issuer=j.app_id,
        audience=j.audience,
        subject=j.app_id if jaas else (j.subject or "*"),
        lifetime=j.lifetime,
        jaas=jaas,
        matrix=j.matrix == "full",
        settle=j.settle,
        user_name=j.user_name,
        user_email=j.user_email,
        features=tuple(sorted(j.features.items())),
        extra=tuple(sorted(j.claims.items())),
    )
    try:
        mint(key, "*")  # a key that cannot sign fails here, not at every round
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        where: _Path = ("private_key_file",) if not hmac else ()
        return None, [
            (where, f"cannot sign {j.algorithm} tokens with this key ({type(exc).__name__})")
        ]
    return key, []


def _read_secret(path: Path, where: _Path, errors: list[tuple[_Path, str]]) -> str:
    # The path is shown only when short: a secret pasted in its place is not echoed.
    shown = str(path) if len(path.name) <= 64 else "the file it names"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        errors.append((where, f"no such file: {shown}"))
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        errors.append((where, f"cannot read {shown}: {type(exc).__name__}"))
        return ""
    if not text:
        errors.append((where, f"{shown} is empty"))
    return text


def _pool_checks(config: MonitorConfig) -> list[tuple[_Path, str]]:
    found: list[tuple[_Path, str]] = []
    names = {s.name for s in config.servers}
    seen: set[str] = set()
    for index, pool in enumerate(config.pools):
        if pool.name in seen:
            found.append((("pools", index, "name"), f"pool name {pool.name!r} is used twice"))
        seen.add(pool.name)
        for where, server in enumerate(pool.servers):
            if server not in names:
                found.append((("pools", index, "servers", where), f"no server named {server!r}"))
        if len(set(pool.servers)) != len(pool.servers):
            found.append((("pools", index, "servers"), "a server is listed twice"))
        for t, tier in enumerate(pool.tiers):
            for server in tier:
                if server not in pool.servers:
                    found.append(
                        (("pools", index, "tiers", t), f"{server!r} is not a server of this pool")
                    )
    return found


def _cross_checks(config: MonitorConfig) -> list[tuple[_Path, str]]:
    """Checks that span several fields, each placed at the field to fix."""
    found: list[tuple[_Path, str]] = _pool_checks(config)
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
            loc: _Path = (
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


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {exc}")]) from None
    return parse_config(text, str(path), path.parent)
