"""The one place where untrusted text becomes output.

Whatever came from a server (a detail, a header, a URL, an error text from
a stream), from a config file or from a client is escaped here for the
medium it goes to:

- ``plain``: control, format and separator characters (ESC, BEL, CR, LF,
  the bidi controls such as U+202E, NUL, C1 controls...) written as visible
  escapes such as ``\\x1b`` or ``\\u202e``: for log lines and plain text;
- ``term``: ``plain``, then rich markup escaped: for tables and lines
  printed with rich (``[/]`` and ``[link=...]`` are shown, not rendered);
- ``html``: ``plain``, then HTML-escaped: for the status page;
- ``label``: ``plain``, then escaped as a Prometheus label value;
- ``to_json``: JSON with every non-ASCII character escaped; JSON stays JSON.

``LogFormatter`` applies ``plain`` to every argument of a log line, so a log
line is one line whatever its arguments hold.
"""

from __future__ import annotations

import html as _html
import json
import logging
from typing import Any, Final

from rich.markup import escape as _rich_escape

__all__ = ["LogFormatter", "html", "label", "plain", "term", "to_json"]

# Printable characters are written as they are; ``str.isprintable`` is false
# for the Unicode categories Cc (controls), Cf (format: the bidi controls,
# zero-width characters), Zl, Zp, Zs other than the space, Co, Cs and Cn.
_SHORT: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(char: str) -> str:
    if char.isprintable():
        return char
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def plain(text: object, limit: int | None = None) -> str:
    """``text`` on one line, with every non-printable character shown as an escape.

    ``limit`` cuts the text (before escaping) and marks the cut with ``…``.
    """
    value = text if isinstance(text, str) else str(text)
    if limit is not None and len(value) > limit:
        value = value[:limit] + "…"
    if value.isprintable():
        return value
    return "".join(_visible(c) for c in value)


def term(text: object, limit: int | None = None) -> str:
    """For rich: ``plain``, then markup escaped (``[red]`` is shown as it is)."""
    return _rich_escape(plain(text, limit))


def html(text: object, limit: int | None = None) -> str:
    """For an HTML page (text and attribute values): ``plain``, then HTML-escaped."""
    return _html.escape(plain(text, limit), quote=True)


def label(text: str) -> str:
    """A Prometheus label value: ``plain``, then the text format's escapes."""
    if text.isprintable() and "\\" not in text and '"' not in text:
        return text
    return plain(text).replace("\\", r"\\").replace('"', r"\"")


def to_json(data: Any, *, indent: int | None = None) -> str:
    """JSON with non-ASCII escaped: control and bidi characters arrive as ``\\uXXXX``."""
    return json.dumps(data, indent=indent, ensure_ascii=True)


class LogFormatter(logging.Formatter):
    """Shows every argument of a log line through ``plain``, and control
    characters in exception texts, so that no log line can be split, forged
    or turned into terminal commands by what a server or a client sent."""

    def format(self, record: logging.LogRecord) -> str:
        if record.args:
            record.args = _plain_args(record.args)
        elif isinstance(record.msg, str):  # a message made before logging it
            record.msg = plain(record.msg)
        return super().format(record)

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return "\n".join(plain(line) for line in text.split("\n"))


def _plain_args(args: Any) -> Any:
    if isinstance(args, dict):
        return {k: _plain_arg(v) for k, v in args.items()}
    if isinstance(args, tuple):
        return tuple(_plain_arg(a) for a in args)
    return args


def _plain_arg(value: object) -> object:
    if isinstance(value, int | float | bool) or value is None:
        return value
    return plain(value)
