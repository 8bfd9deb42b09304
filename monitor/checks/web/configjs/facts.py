"""Turn what the engine read from ``config`` into ConfigFacts, or into a reason.

Every value came from a remote server's script and is checked here: strings
only where strings are expected (a number or an object is not a string),
printable and bounded in length, host names made of host-name characters,
lists cut to a few entries. URLs are resolved against the page URL the way
a browser resolves them (relative and protocol-relative forms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

from monitor import escape
from monitor.checks.web.configjs.sandbox import MAX_LIST, MAX_TEXT, EngineResult
from monitor.model import ConfigFacts, Reason

__all__ = ["HOST_KEYS", "MAX_DETAIL", "Verdict", "clean", "verdict"]

# Longest detail text built from server-controlled words.
MAX_DETAIL: Final = 300

_HOST: Final = re.compile(r"[A-Za-z0-9._-]{1,253}")
# Most characters of a value quoted in a detail.
_SHOWN: Final = 100
# What an nginx SSI command looks like when nginx did not process it.
_SSI: Final = re.compile(r"<!--#")
# The ``hosts`` keys read from config.js, in the order they are judged.
HOST_KEYS: Final = ("domain", "muc", "anonymousdomain", "authdomain", "focus")
_NOT_SHOWN: Final = re.compile(r"[^\x20-\x7e]")
_KINDS: Final = {
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "function": "a function",
    "null": "null",
    "symbol": "a symbol",
    "bigint": "a bigint",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """An evaluation's outcome: facts (when config was read) and the configjs check."""

    facts: ConfigFacts | None
    reason: Reason
    detail: str


def clean(text: str, limit: int = 200) -> str:
    """Server text made safe to show: printable ASCII only, cut to ``limit``."""
    shown = _NOT_SHOWN.sub("?", text[: limit + 1])
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _text(raw: object) -> str | None:
    if isinstance(raw, str) and raw and len(raw) <= MAX_TEXT and raw.isprintable():
        return raw
    return None


def _host(raw: object) -> str | None:
    text = _text(raw)
    return text if text is not None and _HOST.fullmatch(text) else None


def _absent(raw: object) -> bool:
    """Whether a ``hosts`` value is unset: undefined, null or empty.

    These are what lib-jitsi-meet's ``||`` defaults replace; anything else
    is what a browser uses as it is.
    """
    return raw is None or raw == "" or (isinstance(raw, dict) and raw.get("type") == "null")


def _shown_value(raw: object) -> str:
    """A present value as the detail quotes it: escaped, bounded, or its kind."""
    if isinstance(raw, str):
        cut = "..." if len(raw) > _SHOWN else ""
        return f"'{escape.plain(raw[:_SHOWN])}{cut}'"
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind == "string":
            return f"a string of {raw.get('length')} characters"
        return _KINDS.get(str(kind), "not a string")
    return "not a string"


def _unusable_host(config: dict[str, object]) -> str | None:
    """Why the first present but unusable ``hosts`` value is unusable, or None.

    A browser joins with whatever config.js holds, so a value that is there
    but is not a host name (markup, spaces, control characters, a number)
    fails every participant's join; it never gets Jitsi's default.
    """
    for key in HOST_KEYS:
        raw = config.get(key)
        if _absent(raw) or _host(raw) is not None:
            continue
        detail = f"config.js sets hosts.{key} to {_shown_value(raw)}, which is not a host name"
        if isinstance(raw, str) and _SSI.search(raw):
            detail += (
                "; it holds an nginx SSI directive served unprocessed: "
                "config.js needs `ssi on;` in its nginx location"
            )
        return detail
    return None


def _url(raw: object, page_url: str) -> str | None:
    """A URL resolved against the page, as ``new URL(value, location)`` would.

    A string that cannot be resolved is kept as it is: the signalling stage
    parses it in its one guarded place and fails with ``protocol_error``,
    naming it (``monitor.checks.signalling.xmpp.transport.signalling_url``).
    """
    text = _text(raw)
    if text is None:
        return None
    # Browsers drop leading/trailing spaces and tabs/newlines inside a URL.
    text = text.strip(" ").replace("\t", "")
    try:
        resolved = urljoin(page_url, text)
        parts = urlsplit(resolved)
        _ = parts.port  # a bad port raises
    except ValueError:
        return text or None
    if not parts.scheme or not parts.hostname or len(resolved) > MAX_TEXT:
        return text or None
    return resolved


def _rejected(name: str, raw: object) -> str:
    """Why a present value was not taken as a URL, for the detail; '' when absent."""
    if raw is None:
        return ""
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind == "string":
            return f"{name} is a string of {raw.get('length')} characters"
        return f"{name} is {_KINDS.get(str(kind), 'not a string')}"
    return f"{name} is not a usable URL"


def _bool(raw: object) -> bool | None:
    return raw if isinstance(raw, bool) else None


def _stun(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, dict):
        return ()
    urls = raw.get("urls")
    if not isinstance(urls, list):
        return ()
    found = [u for u in (_text(u) for u in urls[:MAX_LIST]) if u is not None]
    return tuple(u for u in found if u.lower().startswith(("stun:", "stuns:", "turn:", "turns:")))


def _facts(config: dict[str, object], page_url: str) -> ConfigFacts:
    domain = _host(config.get("domain"))
    muc = _host(config.get("muc"))
    # Only an unset hosts.muc gets the default; an unusable one fails (_unusable_host).
    fallback = _absent(config.get("muc")) and domain is not None
    return ConfigFacts(
        domain=domain,
        anonymousdomain=_host(config.get("anonymousdomain")),
        authdomain=_host(config.get("authdomain")),
        # lib-jitsi-meet joins conference.<domain> when hosts.muc is unset.
        muc=f"conference.{domain}" if fallback else muc,
        muc_fallback=fallback,
        focus=_host(config.get("focus")),
        bosh=_url(config.get("bosh"), page_url),
        websocket=_url(config.get("websocket"), page_url),
        token_auth_url=_text(config.get("tokenAuthUrl")),
        disable_iframe_api=_bool(config.get("disableIframeAPI")),
        p2p_enabled=_bool(config.get("p2pEnabled")),
        stun_servers=_stun(config.get("stunServers")),
    )


def _engine_reason(message: str, heap: int, memory_limit: int) -> Reason:
    first = message.split("\n", 1)[0].lower()
    if "interrupted" in first:
        return Reason.CONFIGJS_TIMEOUT
    if "out of memory" in first or heap >= memory_limit * 0.9:
        return Reason.CONFIGJS_MEMORY
    return Reason.CONFIGJS_ERROR


def _where(error: dict[str, object]) -> str:
    line = error.get("line")
    return f" at line {line}" if isinstance(line, int) and line > 0 else ""


def _error_text(error: dict[str, object]) -> str:
    name = error.get("name")
    message = error.get("message")
    name_s = clean(name, 60) if isinstance(name, str) else "Error"
    message_s = clean(message, 160) if isinstance(message, str) else ""
    return f"{name_s}{_where(error)}: {message_s}" if message_s else f"{name_s}{_where(error)}"


_MEMORY_WORDS: Final = ("out of memory", "string too long", "invalid array length")


def verdict(result: EngineResult, page_url: str, time_limit: float, memory_limit: int) -> Verdict:
    """The facts and the configjs check for one engine run."""
    if result.data is None:
        reason = _engine_reason(result.engine_error, result.heap, memory_limit)
        if reason is Reason.CONFIGJS_TIMEOUT:
            detail = f"config.js was still running after {time_limit * 1000:.0f} ms; stopped"
        elif reason is Reason.CONFIGJS_MEMORY:
            detail = f"config.js needed more than {memory_limit // (1024 * 1024)} MiB; stopped"
        else:
            first = result.engine_error.split("\n", 1)[0]
            detail = f"the engine stopped config.js: {clean(first, 160)}"
        return Verdict(None, reason, detail)
    error = result.data.get("error")
    config = result.data.get("config")
    thrown = _error_text(error) if isinstance(error, dict) else ""
    if isinstance(error, dict):
        message = str(error.get("message", "")).lower()
        if any(word in message for word in _MEMORY_WORDS):
            limit_mib = memory_limit // (1024 * 1024)
            return Verdict(
                None,
                Reason.CONFIGJS_MEMORY,
                f"config.js ran out of room ({limit_mib} MiB limit): {thrown}",
            )
        if error.get("syntax") is True:
            # A browser runs nothing of a file it cannot parse.
            return Verdict(None, Reason.CONFIGJS_ERROR, f"config.js does not parse: {thrown}")
    if not isinstance(config, dict) or "type" in config:
        kind = config.get("type") if isinstance(config, dict) else "nothing"
        what = "defines no config object" if kind == "undefined" else f"sets config to {kind}"
        if thrown:
            what += f" (it threw {thrown})"
        return Verdict(None, Reason.CONFIGJS_ERROR, clean(f"config.js {what}", MAX_DETAIL))
    facts = _facts(config, page_url)
    unusable = _unusable_host(config)
    if unusable is not None:
        # No default stands in for it: the browser would use the value as it is.
        detail = unusable if not thrown else f"{unusable}; config.js also threw {thrown}"
        return Verdict(facts, Reason.CONFIGJS_BAD_HOST, clean(detail, MAX_DETAIL))
    notes = []
    if thrown:
        # The browser keeps what ran before the error; so does the probe.
        notes.append(f"config.js threw {thrown}; values are those set before it")
    if facts.muc_fallback:
        notes.append(f"config.js names no hosts.muc: {facts.muc} assumed")
    detail = clean("; ".join(notes), MAX_DETAIL)
    if facts.signalling_url is None:
        rejected = [_rejected(name, config.get(name)) for name in ("websocket", "bosh")]
        head = "config.js names neither a websocket nor a bosh URL"
        head += "".join(f" ({r})" for r in rejected if r)
        return Verdict(facts, Reason.NO_SIGNALLING_URL, clean("; ".join([head, *notes]), 400))
    return Verdict(facts, Reason.OK, detail)
