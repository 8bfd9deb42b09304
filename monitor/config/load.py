"""Load ``servers.yaml``: YAML with positions, then the schema, then the cross checks.

Every problem is reported with the file, line and field it concerns, all at
once, so a person can fix a config in one pass.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from monitor.config.checks import cross_checks
from monitor.config.errors import ConfigError, Problem, Where
from monitor.config.keys import token_key
from monitor.config.schema import MonitorConfig

__all__ = ["load_config", "parse_config"]


def _walk(
    node: yaml.Node, path: Where, lines: dict[Where, int], dups: list[tuple[Where, int]]
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
    lines: dict[Where, int] = {}
    dups: list[tuple[Where, int]] = []
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
    found = cross_checks(config)
    for index, server in enumerate(config.servers):
        if server.jwt is not None:
            key, errors = token_key(server, config._base_dir)
            found += [(("servers", index, "jwt", *where), msg) for where, msg in errors]
            if key is not None:
                config._token_keys[server.name] = key
    problems = [_problem(file, lines, loc, msg) for loc, msg in found]
    if problems:
        raise ConfigError(problems)
    return config


def _problem(file: str, lines: dict[Where, int], loc: Where, message: str) -> Problem:
    line = None
    for cut in range(len(loc), -1, -1):
        line = lines.get(loc[:cut])
        if line is not None:
            break
    return Problem(file, line, _field_name(loc), message)


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
