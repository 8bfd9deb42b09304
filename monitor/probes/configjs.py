"""Read a Jitsi ``config.js`` without executing it.

config.js is JavaScript from a remote server. It is never run: a small
tokenizer and a parser for the subset Jitsi deployments use evaluate it
symbolically. Understood:

- ``var``/``let``/``const`` declarations and member assignments
  (``config.hosts.domain = 'x'``, ``config['bosh'] = ...``);
- object and array literals, strings, numbers, booleans, ``null``;
- ``+`` concatenation of literals and already-known variables;
- nginx SSI directives (``<!--# echo var="subdir" default="" -->``) that the
  server left unfilled, read as their ``default``;
- ``if``/``else`` with a condition that can be decided from known values;
  when it cannot, only assignments of known values in its branches apply.

Anything else (calls, functions, other operators) evaluates to "unknown" and
is skipped: an unknown construct is never fatal. A hostile file costs
little: the tokenizer is one linear regex scan, only the first 512 KiB are read,
nesting and string lengths are bounded, and host-name fields that hold
anything but host-name characters are dropped.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Final

from monitor.model import ConfigFacts

__all__ = ["parse_config_js"]

MAX_DEPTH: Final = 64
# Longest string a concatenation may build; real config.js values are short.
MAX_STRING: Final = 64 * 1024
# Only this much of a config.js is read; real ones are far smaller.
MAX_SOURCE: Final = 512 * 1024


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

_SSI = re.compile(rb'<!--#\s*echo\s+var="[^"]*"(?:\s+default="([^"]*)")?\s*-->')

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v\u00a0\ufeff]+)
  | (?P<nl>\n+)
  | (?P<lc>//[^\n]*)
  | (?P<bc>/\*.*?(?:\*/|\Z))
  | (?P<str>'(?:[^'\\\n]|\\.|\\\n)*(?:'|(?=\n)|\Z)|"(?:[^"\\\n]|\\.|\\\n)*(?:"|(?=\n)|\Z))
  | (?P<tpl>`(?:[^`\\]|\\.)*(?:`|\Z))
  | (?P<num>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
  | (?P<id>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<op>\.\.\.|===|!==|==|!=|<=|>=|&&|\|\||\?\?|\?\.|=>|[{}\[\]();,:.=+\-*/%!?<>&|^~])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\n|.)", re.DOTALL)


def _unescape(body: str) -> str:
    def repl(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc == "\n":
            return ""
        if esc.startswith("u{"):
            code = int(esc[2:-1], 16)
            return chr(code) if code <= 0x10FFFF else ""
        if esc[0] in "ux" and len(esc) > 1:
            return chr(int(esc[1:], 16))
        return _ESCAPES.get(esc, esc)

    if "\\" not in body:
        return body
    # Escapes may pair into surrogates (\ud83d\ude00) or leave lone ones, which
    # cannot be encoded later: join the pairs, replace the rest.
    text = _ESCAPE.sub(repl, body)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@dataclass(slots=True)
class _Tok:
    kind: str  # "str", "num", "id", "op", "eof"
    text: str
    value: object
    nl: bool  # a line break stands before this token


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    nl = False
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        raw = m.group()
        if kind == "ws":
            continue
        if kind in ("nl", "lc"):
            nl = nl or kind == "nl"
            continue
        if kind == "bc":
            nl = nl or "\n" in raw
            continue
        value: object = None
        if kind in ("str", "tpl"):
            closed = len(raw) > 1 and raw[-1] == raw[0]
            body = raw[1:-1]
            # An unterminated literal is a syntax error: its value is unknown.
            substitutes = kind == "tpl" and "${" in body
            value = _unescape(body) if closed and not substitutes else UNKNOWN
            kind = "str"
        elif kind == "num":
            try:
                value = float(int(raw, 16)) if raw[:2] in ("0x", "0X") else float(raw)
            except (ValueError, OverflowError):
                value = UNKNOWN
        elif kind == "other":
            kind = "op"
        toks.append(_Tok(kind, raw, value, nl))
        nl = False
    toks.append(_Tok("eof", "", None, True))
    return toks


_OPEN: Final = {"(": ")", "[": "]", "{": "}"}
_CLOSE: Final = frozenset(")]}")
# Operators after which a line break does not end a statement.
_CONTINUES: Final = frozenset(
    {"+", "-", "*", "/", "%", "=", ",", "(", "[", "{", ".", "?", ":", "!", "<", ">"}
    | {"&&", "||", "??", "==", "===", "!=", "!=="}
)


def _truthy(value: object) -> bool | None:
    if value is UNKNOWN:
        return None
    if value is None or value is False:
        return False
    if isinstance(value, str | float):
        return bool(value)
    return True


class _Parser:
    """A recursive-descent evaluator over the token list; never raises on input."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.env: dict[str, object] = {}
        self.depth = 0
        # While > 0 we are inside a branch whose condition is unknown: only
        # known values are assigned, and never over an existing value with
        # an unknown one.
        self.tentative = 0
        # While > 0 we are inside a branch known not to run.
        self.dead = 0

    # -- token helpers -------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def at(self, text: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind in ("op", "id") and tok.text == text

    def advance(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def skip_balanced(self) -> None:
        """Skip one bracketed group starting at the current opening bracket."""
        stack: list[str] = []
        while self.tok.kind != "eof":
            text = self.advance().text
            if text in _OPEN:
                stack.append(_OPEN[text])
            elif text in _CLOSE and stack:
                if text == stack[-1]:
                    stack.pop()
                if not stack:
                    return

    def skip_expression(self, stop: frozenset[str]) -> None:
        """Skip the rest of an expression up to a stop token at depth zero."""
        prev = ""
        while self.tok.kind != "eof":
            tok = self.tok
            if tok.kind == "op" and (tok.text in stop or tok.text in _CLOSE):
                return
            if tok.nl and prev not in _CONTINUES and tok.text not in _CONTINUES and prev:
                return
            if tok.kind == "op" and tok.text in _OPEN:
                self.skip_balanced()
                prev = ")"
                continue
            prev = self.advance().text

    # -- statements ----------------------------------------------------------
    def program(self) -> None:
        while self.tok.kind != "eof":
            start = self.i
            self.statement()
            if self.i == start:  # a stray token such as an unmatched "}"
                self.advance()

    def statement(self) -> None:
        tok = self.tok
        if tok.kind == "op":
            if tok.text == ";":
                self.advance()
            elif tok.text == "{":
                self.block()
            else:
                self.skip_statement()
            return
        if tok.kind == "id":
            if tok.text in ("var", "let", "const"):
                self.advance()
                self.declarations()
                return
            if tok.text == "if":
                self.if_statement()
                return
            if tok.text in ("function", "class"):
                self.advance()
                while self.tok.kind != "eof" and not self.at("{"):
                    if self.tok.text in _OPEN:
                        self.skip_balanced()
                    else:
                        self.advance()
                self.skip_balanced()
                return
            if tok.text not in ("return", "for", "while", "do", "switch", "try", "new"):
                self.assignment_or_skip()
                return
        self.skip_statement()

    def skip_statement(self) -> None:
        self.skip_expression(frozenset({";"}))
        if self.at(";"):
            self.advance()

    def end_statement(self) -> None:
        if self.at(";"):
            self.advance()
        elif not (self.tok.nl or self.at("}") or self.tok.kind == "eof"):
            self.skip_statement()

    def block(self) -> None:
        self.advance()  # "{"
        self.depth += 1
        while self.tok.kind != "eof" and not self.at("}"):
            start = self.i
            if self.depth > MAX_DEPTH:
                self.skip_expression(frozenset())
            else:
                self.statement()
            if self.i == start:
                self.advance()
        self.depth -= 1
        if self.at("}"):
            self.advance()

    def if_statement(self) -> None:
        self.advance()  # "if"
        cond: bool | None = None
        if self.at("("):
            self.advance()
            value = self.expression(frozenset({")"}))
            if self.at(")"):
                self.advance()
            cond = _truthy(value)
        self.branch(cond)
        if self.at("else"):
            self.advance()
            self.branch(None if cond is None else not cond)

    def branch(self, runs: bool | None) -> None:
        if self.depth > MAX_DEPTH:
            self.skip_statement()
            return
        self.depth += 1
        try:
            self.branch_inner(runs)
        finally:
            self.depth -= 1

    def branch_inner(self, runs: bool | None) -> None:
        if runs is False:
            self.dead += 1
        elif runs is None:
            self.tentative += 1
        self.statement()
        if runs is False:
            self.dead -= 1
        elif runs is None:
            self.tentative -= 1

    def declarations(self) -> None:
        while self.tok.kind == "id":
            name = self.advance().text
            value: object = None
            if self.at("="):
                self.advance()
                value = self.expression(frozenset({",", ";"}))
            self.store(self.env, name, value)
            if not self.at(","):
                break
            self.advance()
        self.end_statement()

    def assignment_or_skip(self) -> None:
        start = self.i
        path: list[str] = [self.advance().text]
        while True:
            if self.at(".") and self.toks[self.i + 1].kind == "id":
                self.advance()
                path.append(self.advance().text)
            elif self.at("["):
                self.advance()
                key = self.expression(frozenset({"]"}))
                if not self.at("]"):
                    break
                self.advance()
                if isinstance(key, float):
                    key = str(int(key)) if key.is_integer() else str(key)
                if not isinstance(key, str):
                    path = []
                    break
                path.append(key)
            else:
                break
        if path and self.at("="):
            self.advance()
            value = self.expression(frozenset({";"}))
            self.assign(path, value)
            self.end_statement()
            return
        self.i = start
        self.skip_statement()

    def assign(self, path: list[str], value: object) -> None:
        if path[0] == "window" and len(path) > 1:
            path = path[1:]
        target: object = self.env
        for key in path[:-1]:
            if not isinstance(target, dict):
                return
            child = target.get(key)
            if not isinstance(child, dict):
                if self.dead or (self.tentative and child is not None):
                    return
                child = {}
                target[key] = child
            target = child
        if isinstance(target, dict):
            self.store(target, path[-1], value)

    def store(self, target: dict[str, object], key: str, value: object) -> None:
        if self.dead:
            return
        # A branch that may not run never replaces a value we already know.
        if self.tentative and (value is UNKNOWN or target.get(key, UNKNOWN) not in (None, UNKNOWN)):
            return
        target[key] = value

    # -- expressions ---------------------------------------------------------
    def expression(self, stop: frozenset[str]) -> object:
        if self.depth > MAX_DEPTH:
            self.skip_expression(stop)
            return UNKNOWN
        self.depth += 1
        try:
            value = self.unary(stop)
            while True:
                tok = self.tok
                if tok.kind != "op" or tok.text in stop or tok.text in _CLOSE:
                    return value
                if tok.text == "+":
                    self.advance()
                    right = self.unary(stop)
                    value = _plus(value, right)
                elif tok.text in (",", ";", ":") or (tok.nl and tok.text not in _CONTINUES):
                    return value
                else:
                    self.skip_expression(stop)
                    return UNKNOWN
        finally:
            self.depth -= 1

    def unary(self, stop: frozenset[str]) -> object:
        if self.depth > MAX_DEPTH:
            self.skip_expression(stop)
            return UNKNOWN
        self.depth += 1
        try:
            return self.unary_inner(stop)
        finally:
            self.depth -= 1

    def unary_inner(self, stop: frozenset[str]) -> object:
        if self.at("!"):
            self.advance()
            truth = _truthy(self.unary(stop))
            return UNKNOWN if truth is None else not truth
        if self.at("-") or self.at("+"):
            sign = -1.0 if self.advance().text == "-" else 1.0
            value = self.unary(stop)
            return sign * value if isinstance(value, float) else UNKNOWN
        if self.at("typeof") or self.at("void") or self.at("new"):
            self.advance()
            self.unary(stop)
            return UNKNOWN
        return self.primary(stop)

    def primary(self, stop: frozenset[str]) -> object:
        tok = self.tok
        value: object
        if tok.kind in ("str", "num"):
            self.advance()
            value = tok.value
        elif tok.kind == "id":
            value = self.identifier()
        elif tok.text == "{":
            value = self.object_literal()
        elif tok.text == "[":
            value = self.array_literal()
        elif tok.text == "(":
            start = self.i
            self.advance()
            value = self.expression(frozenset({")"}))
            if not self.at(")"):  # e.g. arrow parameters "(a, b)": skip the group
                self.i = start
                self.skip_balanced()
                value = UNKNOWN
            else:
                self.advance()
            if self.at("=>"):
                self.advance()
                self.skip_function_body(stop)
                return UNKNOWN
        else:
            self.skip_expression(stop)
            return UNKNOWN
        return self.postfix(value)

    def identifier(self) -> object:
        name = self.advance().text
        if name == "true":
            return True
        if name == "false":
            return False
        if name in ("null", "undefined"):
            return None
        if name == "function":
            while self.tok.kind != "eof" and not self.at("{"):
                if self.tok.text in _OPEN:
                    self.skip_balanced()
                else:
                    self.advance()
            self.skip_balanced()
            return UNKNOWN
        if self.at("=>"):
            self.advance()
            self.skip_function_body(frozenset({",", ";"}))
            return UNKNOWN
        return self.env.get(name, UNKNOWN)

    def skip_function_body(self, stop: frozenset[str]) -> None:
        if self.at("{"):
            self.skip_balanced()
        else:
            self.skip_expression(stop)

    def postfix(self, value: object) -> object:
        while True:
            if self.at(".") or self.at("?."):
                self.advance()
                if self.tok.kind != "id":
                    return UNKNOWN
                key = self.advance().text
                value = value.get(key) if isinstance(value, dict) else UNKNOWN
            elif self.at("["):
                self.advance()
                index = self.expression(frozenset({"]"}))
                if self.at("]"):
                    self.advance()
                value = (
                    value.get(index)
                    if isinstance(value, dict) and isinstance(index, str)
                    else UNKNOWN
                )
            elif self.at("(") and not self.tok.nl:
                self.skip_balanced()
                value = UNKNOWN
            else:
                return value

    def object_literal(self) -> object:
        self.advance()  # "{"
        obj: dict[str, object] = {}
        while self.tok.kind != "eof" and not self.at("}"):
            start = self.i
            self.property(obj)
            if self.i == start:  # a stray token such as ")": step over it
                self.advance()
        if self.at("}"):
            self.advance()
        return obj

    def property(self, obj: dict[str, object]) -> None:
        """One ``key: value`` of an object literal, and the comma after it."""
        tok = self.tok
        key: str | None = None
        if tok.kind in ("id", "str") and isinstance(tok.value, str | None):
            key = tok.text if tok.kind == "id" else str(tok.value)
            self.advance()
        elif tok.kind == "num" and isinstance(tok.value, float):
            key = str(int(tok.value)) if tok.value.is_integer() else str(tok.value)
            self.advance()
        elif tok.text == "[":
            self.skip_balanced()
        if key is not None and self.at(":"):
            self.advance()
            obj[key] = self.expression(frozenset({",", "}"}))
        elif key is not None and (self.at(",") or self.at("}")):
            obj[key] = self.env.get(key, UNKNOWN)  # shorthand property
        else:
            self.skip_expression(frozenset({",", "}"}))  # method, spread, getter
        if self.at(","):
            self.advance()
        elif not self.at("}"):
            self.skip_expression(frozenset({",", "}"}))
            if self.at(","):
                self.advance()

    def array_literal(self) -> object:
        self.advance()  # "["
        items: list[object] = []
        while self.tok.kind != "eof" and not self.at("]"):
            start = self.i
            if self.at(","):
                self.advance()
                continue
            items.append(self.expression(frozenset({",", "]"})))
            if not (self.at(",") or self.at("]")):
                self.skip_expression(frozenset({",", "]"}))
            if self.i == start:
                self.advance()
        if self.at("]"):
            self.advance()
        return items


def _plus(left: object, right: object) -> object:
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if isinstance(left, float) and isinstance(right, float):
        return left + right
    if isinstance(left, str) or isinstance(right, str):
        joined = _js_str(left) + _js_str(right)
        # Doubling a string in a loop of statements would grow without bound.
        return joined if len(joined) <= MAX_STRING else UNKNOWN
    return UNKNOWN


def _js_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if value is None:
        return "null"
    return "[object Object]"


_HOST = re.compile(r"[A-Za-z0-9._-]{1,253}")


def _text(obj: object, *path: str) -> str | None:
    """A string field, at most 2048 printable characters, else None."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    if isinstance(obj, str) and obj and len(obj) <= 2048 and obj.isprintable():
        return obj
    return None


def _host(obj: object, *path: str) -> str | None:
    """A host-name field (domain, muc, focus): only host-name characters."""
    text = _text(obj, *path)
    return text if text is not None and _HOST.fullmatch(text) else None


def evaluate(source: bytes | str) -> dict[str, object]:
    """Evaluate a config.js symbolically and return its global variables."""
    if isinstance(source, str):
        source = source.encode("utf-8", "replace")
    source = _SSI.sub(lambda m: m.group(1) or b"", source[:MAX_SOURCE])
    parser = _Parser(_tokenize(source.decode("utf-8", "replace")))
    with contextlib.suppress(RecursionError):  # nesting is bounded: a last defence
        parser.program()
    return parser.env


def parse_config_js(source: bytes | str) -> ConfigFacts:
    """Extract the fields a probe needs from a config.js body.

    Unknown constructs are skipped; fields that cannot be determined are None.
    """
    config = evaluate(source).get("config")
    disable = config.get("disableIframeAPI") if isinstance(config, dict) else None
    return ConfigFacts(
        domain=_host(config, "hosts", "domain"),
        anonymousdomain=_host(config, "hosts", "anonymousdomain"),
        authdomain=_host(config, "hosts", "authdomain"),
        muc=_host(config, "hosts", "muc"),
        focus=_host(config, "hosts", "focus"),
        bosh=_text(config, "bosh"),
        websocket=_text(config, "websocket"),
        token_auth_url=_text(config, "tokenAuthUrl"),
        disable_iframe_api=disable if isinstance(disable, bool) else None,
    )
