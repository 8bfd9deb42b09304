"""Load ``servers.yaml``: YAML with limits, then the schema, then the cross checks.

Every problem is reported with the file, line and field it concerns, all at
once, so a person can fix a config in one pass.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, TypeAdapter, ValidationError

from monitor.checks.jwt.settings import JwtSettings
from monitor.config.checks import cross_checks
from monitor.config.errors import ConfigError, Problem, Where
from monitor.config.keys import token_key
from monitor.config.schema import MonitorConfig, PoolConfig, ServerConfig
from monitor.config.yaml_reader import MAX_DOCUMENT_BYTES, parse_yaml
from monitor.files import UnusableFile, read_regular

__all__ = ["load_config", "parse_config"]


def _field_name(loc: Where) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: Where) -> type[BaseModel] | None:
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


def _message(error: Any, loc: Where) -> str:
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


# Servers and pools are validated this many at a time: no single call into
# pydantic's core (which holds the GIL) lasts long enough to stall the
# event loop while a reload is read in a worker thread.
_CHUNK: Final = 200
_LISTS: Final = (
    ("servers", TypeAdapter(list[ServerConfig])),
    ("pools", TypeAdapter(list[PoolConfig])),
)


def _validate(data: dict[str, Any]) -> tuple[MonitorConfig | None, list[tuple[Where, Any]]]:
    """The config, or the pydantic errors with their places; long lists in chunks."""
    errors: list[tuple[Where, Any]] = []
    rest = dict(data)
    chunked: dict[str, list[Any]] = {}
    for key, adapter in _LISTS:
        items = rest.get(key)
        if not isinstance(items, list) or len(items) <= _CHUNK:
            continue
        del rest[key]
        chunked[key] = []
        for start in range(0, len(items), _CHUNK):
            try:
                chunked[key] += adapter.validate_python(items[start : start + _CHUNK])
            except ValidationError as exc:
                errors += [
                    ((key, start + int(e["loc"][0]), *e["loc"][1:]), e) for e in exc.errors()
                ]
    try:
        config = MonitorConfig.model_validate(rest)
    except ValidationError as exc:
        errors += [(tuple(e["loc"]), e) for e in exc.errors()]
    if errors:
        # in the order of the file's keys, as one validation would give them
        order = {name: i for i, name in enumerate(MonitorConfig.model_fields)}
        errors.sort(key=lambda item: order.get(str(item[0][0]), -1) if item[0] else -1)
        return None, errors
    return (config.model_copy(update=chunked) if chunked else config), []


def parse_config(text: str, file: str = "<config>", base_dir: Path | None = None) -> MonitorConfig:
    """Validate config text; raise ConfigError naming file, line and field.

    The YAML is read with limits (``monitor.config.yaml_reader``); the lines of
    the fields are looked up only when there is a problem to place.
    """
    parsed = parse_yaml(text, file)
    data = parsed.data
    if data is None:
        raise ConfigError([Problem(file, None, "", "the file is empty")])
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, 1, "", "the top level must be a mapping of keys")])
    if parsed.duplicates:
        raise ConfigError(
            [
                Problem(file, line, _field_name(loc), "key appears twice")
                for loc, line in parsed.duplicates
            ]
        )
    config, errors = _validate(data)
    if config is None:
        lines = parse_yaml(text, file, lines=True).lines
        raise ConfigError([_problem(file, lines, loc, _message(e, loc)) for loc, e in errors])
    config._base_dir = base_dir or Path()
    found: list[tuple[Where, str]] = []
    for index, server in enumerate(config.servers):
        if server.block(JwtSettings) is not None:
            key, errors = token_key(server, config._base_dir)
            found += [(("servers", index, "jwt", *where), msg) for where, msg in errors]
            if key is not None:
                config._token_keys[server.name] = key
    found = cross_checks(config) + found
    if found:
        lines = parse_yaml(text, file, lines=True).lines
        raise ConfigError([_problem(file, lines, loc, msg) for loc, msg in found])
    return config


def _problem(file: str, lines: dict[Where, int], loc: Where, message: str) -> Problem:
    line = None
    for cut in range(len(loc), -1, -1):
        line = lines.get(loc[:cut])
        if line is not None:
            break
    return Problem(file, line, _field_name(loc), message)


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a config file (at most ``MAX_DOCUMENT_BYTES``)."""
    path = Path(path)
    try:
        # A regular file only: a FIFO or a device would block the read for ever.
        raw = read_regular(path, MAX_DOCUMENT_BYTES)
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), None, "", "no such file")]) from None
    except UnusableFile as exc:
        message = str(exc).replace("it is", "the file is", 1)
        raise ConfigError([Problem(str(path), None, "", message)]) from None
    except OSError as exc:
        why = exc.strerror or exc
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {why}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([Problem(str(path), line, "", "not UTF-8 text")]) from None
    return parse_config(text, str(path), path.parent)
