"""The YAML of a config, read with limits: what a config file holds can never
exhaust the monitor's memory, time or stack.

libyaml (PyYAML's C parser, where present) turns the text into events; this
module builds plain data from them in one pass, without recursion, and
refuses, each with its line:

- a document over ``MAX_DOCUMENT_BYTES`` (checked before parsing);
- more than ``MAX_NODES`` values, nesting deeper than ``MAX_DEPTH``;
- a scalar over ``MAX_SCALAR_CHARS``, an integer of more than ``MAX_INT_DIGITS``;
- anchors and aliases (``&name``, ``*name``): an alias is how a few hundred
  bytes expand to gigabytes, and a config needs none (``defaults:`` is there
  for values that repeat); merge keys (``<<``) with them;
- tags other than YAML's plain ones, complex keys, several documents.

Positions are recorded only when asked (``lines=True``): the fast path
builds the data alone, and the lines are found again for the messages of a
config that has problems.
"""

from __future__ import annotations

import contextlib
import gc
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.nodes import ScalarNode

from monitor.config.errors import ConfigError, Problem, Where

__all__ = [
    "C_LOADER",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "MAX_SCALAR_CHARS",
    "Parsed",
    "no_gc",
    "parse_yaml",
]

# 10,000 servers take some 1.2 MB and 100,000 values; these leave room for
# ten times that, and bound what a hostile file costs (some 100 MiB).
MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
MAX_NODES: Final = 1_000_000
# servers[i].jwt.claims.x is 5 deep; nothing in a config is near this.
MAX_DEPTH: Final = 32
# A URL, a name, a claim: none is near this long.
MAX_SCALAR_CHARS: Final = 64 * 1024
# Past int64; a duration or a count of this many digits is a mistake.
MAX_INT_DIGITS: Final = 20

_Loader: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
# True when libyaml's C parser is used (the speed of the 1-second target).
C_LOADER: Final = _Loader is not yaml.SafeLoader

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_MERGE: Final = "tag:yaml.org,2002:merge"
_SEQ: Final = "tag:yaml.org,2002:seq"
_MAP: Final = "tag:yaml.org,2002:map"
# Scalars built by PyYAML's safe constructor (the same values as yaml.safe_load).
_BUILT: Final = frozenset(
    {
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        _INT,
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp",
    }
)
_IMPLICIT: Final = yaml.resolver.Resolver.yaml_implicit_resolvers
_DIGIT: Final = re.compile(r"[0-9a-fA-F]")


@dataclass(slots=True)
class Parsed:
    """The data of a config, with the line of every key and item when asked for."""

    data: Any
    lines: dict[Where, int] = field(default_factory=dict)
    duplicates: list[tuple[Where, int]] = field(default_factory=list)


class _Stop(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


_GC_LOCK = threading.Lock()
_GC_HOLDERS = 0
_GC_BEFORE = True  # whether collection was on when the first holder came in


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """No cyclic garbage collection while building (acyclic) data: a config
    of 100,000 values would otherwise trigger it dozens of times."""
    global _GC_HOLDERS, _GC_BEFORE
    with _GC_LOCK:
        if _GC_HOLDERS == 0:
            _GC_BEFORE = gc.isenabled()
        _GC_HOLDERS += 1
        gc.disable()
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_HOLDERS -= 1
            # The last one out restores what the first one in found (two
            # overlapping readers must not leave collection off for good).
            if _GC_HOLDERS == 0 and _GC_BEFORE:
                gc.enable()


_SWITCH_LOCK = threading.Lock()
_SWITCH_HOLDERS = 0
_SWITCH_BEFORE = sys.getswitchinterval()
# While a config is read beside the event loop: how often the reading thread
# hands the GIL over (Python's default is every 5 ms).
READ_SWITCH_INTERVAL: Final = 0.0005


@contextlib.contextmanager
def beside_the_loop() -> Iterator[None]:
    """For reading a config in a worker thread while the event loop runs: no
    cyclic garbage collection meanwhile (the data is acyclic; a collection of
    a large heap would hold the GIL for hundreds of milliseconds) and the GIL
    handed over every 0.5 ms, so that the loop waits for it briefly."""
    global _SWITCH_HOLDERS, _SWITCH_BEFORE
    with _SWITCH_LOCK:
        if _SWITCH_HOLDERS == 0:
            _SWITCH_BEFORE = sys.getswitchinterval()
            sys.setswitchinterval(READ_SWITCH_INTERVAL)
        _SWITCH_HOLDERS += 1
    try:
        with no_gc():
            yield
    finally:
        with _SWITCH_LOCK:
            _SWITCH_HOLDERS -= 1
            if _SWITCH_HOLDERS == 0:
                sys.setswitchinterval(_SWITCH_BEFORE)


class _Frame:
    __slots__ = ("data", "is_map", "key", "key_mark", "path")

    def __init__(self, data: Any, path: Where) -> None:
        self.data = data
        self.path = path
        self.is_map = isinstance(data, dict)
        self.key: Any = _NO_KEY
        self.key_mark: Any = None


_NO_KEY: Final = object()


def parse_yaml(text: str, file: str, *, lines: bool = False) -> Parsed:
    """The data of ``text`` (one YAML document), or ConfigError naming ``file`` and a line."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ConfigError(
            [Problem(file, None, "", f"the file is larger than {MAX_DOCUMENT_BYTES} bytes")]
        )
    try:
        with no_gc():
            return _build(text, lines)
    except _Stop as stop:
        raise ConfigError([Problem(file, stop.line, "", stop.message)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(file, line, "", f"not valid YAML: {problem}")]) from None
    except (RecursionError, MemoryError) as exc:
        what = "too deeply nested" if isinstance(exc, RecursionError) else "too large"
        raise ConfigError([Problem(file, None, "", f"the file is {what} to load")]) from None


def _build(text: str, want_lines: bool) -> Parsed:
    out = Parsed(None)
    constructor = yaml.SafeLoader("")  # only its scalar constructors are used
    loader = _Loader(text)
    try:
        get = loader.get_event
        stack: list[_Frame] = []
        nodes = documents = 0
        while True:
            event = get()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                value = _scalar(event, constructor)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                _check_node(event, kind is yaml.MappingStartEvent)
                if len(stack) >= MAX_DEPTH:
                    raise _Stop(_line(event), f"values are nested more than {MAX_DEPTH} deep")
                if stack and stack[-1].is_map and stack[-1].key is _NO_KEY:
                    raise _Stop(_line(event), "a key must be a plain value, not a list or mapping")
                nodes += 1
                path = _child_path(stack)
                if want_lines and (not stack or not stack[-1].is_map):
                    out.lines[path] = _line(event)  # a list's item, or the top
                stack.append(_Frame({} if kind is yaml.MappingStartEvent else [], path))
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                value = stack.pop().data
            elif kind is yaml.AliasEvent:
                raise _Stop(
                    _line(event),
                    f"YAML aliases (*{_shown(event.anchor)}) are not allowed: "
                    "write the value out (repeated settings go under defaults:)",
                )
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _Stop(_line(event), "the file holds more than one YAML document")
                continue
            elif kind is yaml.StreamEndEvent:
                break
            else:  # stream start, document end
                continue
            nodes += 1
            if nodes > MAX_NODES:
                raise _Stop(_line(event), f"the file holds more than {MAX_NODES} values")
            if not stack:
                out.data = value
                continue
            top = stack[-1]
            if not top.is_map:
                if want_lines and kind is yaml.ScalarEvent:
                    out.lines[(*top.path, len(top.data))] = _line(event)
                top.data.append(value)
            elif top.key is _NO_KEY:
                if value.__class__ is not str and not _hashable(value):
                    raise _Stop(_line(event), "a key must be a plain value")
                top.key, top.key_mark = value, event.start_mark
            else:
                key = top.key
                top.key = _NO_KEY
                if key in top.data:
                    out.duplicates.append(((*top.path, str(key)), top.key_mark.line + 1))
                if want_lines:
                    out.lines[(*top.path, str(key))] = top.key_mark.line + 1
                top.data[key] = value
        return out
    finally:
        loader.dispose()


def _child_path(stack: list[_Frame]) -> Where:
    if not stack:
        return ()
    top = stack[-1]
    if top.is_map:
        return (*top.path, str(top.key))
    return (*top.path, len(top.data))


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _line(event: Any) -> int:
    return int(event.start_mark.line) + 1


def _shown(name: object) -> str:
    return str(name)[:40]


def _anchors(name: object) -> str:
    return (
        f"YAML anchors (&{_shown(name)}) and aliases (*name) are not allowed: "
        "write the value out (repeated settings go under defaults:)"
    )


def _check_node(event: Any, mapping: bool) -> None:
    if event.anchor is not None:
        raise _Stop(_line(event), _anchors(event.anchor))
    tag = event.tag
    if tag is not None and tag != "!" and tag != (_MAP if mapping else _SEQ):
        raise _Stop(_line(event), f"the YAML tag {_shown(tag)!r} is not allowed here")


def _scalar(event: Any, constructor: Any) -> Any:
    value: str = event.value
    if event.anchor is not None:
        raise _Stop(_line(event), _anchors(event.anchor))
    if len(value) > MAX_SCALAR_CHARS:
        raise _Stop(_line(event), f"a value is longer than {MAX_SCALAR_CHARS} characters")
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:  # quoted: a string
            return value
        tag = _resolve(value)
    if tag == _STR:
        return value
    if tag == _MERGE:
        raise _Stop(_line(event), "YAML merge keys (<<) are not allowed")
    if tag not in _BUILT:
        raise _Stop(_line(event), f"the YAML tag {_shown(tag)!r} is not allowed here")
    if tag == _INT and len(_DIGIT.findall(value)) > MAX_INT_DIGITS:
        raise _Stop(_line(event), f"a number has more than {MAX_INT_DIGITS} digits")
    try:
        return constructor.yaml_constructors[tag](constructor, ScalarNode(tag, value))
    except (ValueError, OverflowError, yaml.YAMLError) as exc:
        raise _Stop(_line(event), f"{value[:40]!r} is not a valid value ({exc})") from None


def _resolve(value: str) -> str:
    """The tag YAML gives a plain scalar (int, float, bool, null, ...), else str."""
    for tag, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            return str(tag) if tag in _BUILT or tag == _MERGE else _STR
    return _STR
