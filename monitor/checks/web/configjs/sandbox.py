"""Run one config.js in a fresh QuickJS runtime with browser-like globals.

Each call creates its own runtime (``quickjs.Context`` owns one) and drops it
before returning, so nothing a file does (globals, patched prototypes) can
reach the next evaluation. The engine runs with the GIL released; the call
blocks, so callers run it in a worker thread.

What the page sees: ``window``/``self``/``globalThis``, a ``location`` built
from the page URL, a ``document`` with ``location``, ``currentScript`` and
inert stubs, ``navigator``, ``console``, storage that holds nothing, and
timers that return ids but never run. There is no network, no file access,
and pending jobs (promises, ``queueMicrotask``) are never run.

The wrapper (this module's own JavaScript) runs the file through an indirect
``eval`` inside ``try``: every exception the file throws is turned into plain
text *inside* the time limit. Only errors the engine raises itself (the
interrupt at the time limit, running out of memory while handling another
error) reach Python, and the binding turns those into text by calling
``toString``/``stack`` with no time limit; so before the file runs, the
wrapper freezes everything that conversion reads (``Object.prototype``, the
error constructors and prototypes, ``Error.prepareStackTrace``).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import quickjs

__all__ = ["MAX_LIST", "MAX_TEXT", "EngineResult", "page_env", "run"]

# Longest string read back from the engine; longer ones come back as a marker.
MAX_TEXT: Final = 2048
# Most STUN servers (and URLs per server) read back.
MAX_LIST: Final = 16
# QuickJS's own recursion limit; the worker thread's C stack is far larger.
_STACK_BYTES: Final = 512 * 1024

_WRAPPER: Final = r"""
(function (src, envText) {
  'use strict';
  var G = globalThis;
  delete G.__jm_src;
  delete G.__jm_env;
  var indirectEval = G.eval, stringify = JSON.stringify, parse = JSON.parse;
  var freeze = Object.freeze, define = Object.defineProperty, names = Object.getOwnPropertyNames;
  var isArray = Array.isArray, SyntaxErr = SyntaxError;
  var MAX_TEXT = @MAX_TEXT@, MAX_LIST = @MAX_LIST@;

  // What the host reads when an engine error crosses over: frozen first.
  define(Error, 'prepareStackTrace', {value: undefined, writable: false, configurable: false});
  [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError,
   InternalError, AggregateError].forEach(function (C) { freeze(C.prototype); freeze(C); });
  freeze(Object.prototype);

  var env = parse(envText);
  function noop() {}
  function nothing() { return null; }
  function none() { return []; }
  var timers = 0;
  function timer() { timers += 1; return timers; }
  var loc = {
    href: env.href, protocol: env.protocol, host: env.host, hostname: env.hostname,
    port: env.port, pathname: env.pathname, search: '', hash: '', origin: env.origin,
    ancestorOrigins: [], assign: noop, replace: noop, reload: noop,
    toString: function () { return env.href; }
  };
  function element() {
    return {style: {}, dataset: {}, setAttribute: noop, getAttribute: nothing,
            appendChild: noop, removeChild: noop, addEventListener: noop};
  }
  var script = element();
  script.src = env.script;
  var document = {
    location: loc, URL: env.href, documentURI: env.href, domain: env.hostname,
    referrer: '', title: '', cookie: '', readyState: 'loading', currentScript: script,
    head: element(), body: null, documentElement: element(), createElement: element,
    getElementById: nothing, querySelector: nothing, querySelectorAll: none,
    getElementsByTagName: none, getElementsByClassName: none,
    addEventListener: noop, removeEventListener: noop, write: noop
  };
  var storage = {getItem: nothing, setItem: noop, removeItem: noop, clear: noop,
                 key: nothing, length: 0};
  var quiet = {log: noop, info: noop, warn: noop, error: noop, debug: noop, trace: noop};
  var browser = {
    window: G, self: G, top: G, parent: G, frames: G, location: loc, document: document,
    navigator: {userAgent: env.agent, language: 'en-US', languages: ['en-US', 'en'],
                platform: 'Linux x86_64', onLine: true, cookieEnabled: false},
    console: quiet, localStorage: storage, sessionStorage: storage,
    history: {length: 1, state: null, pushState: noop, replaceState: noop},
    screen: {width: 1280, height: 720}, innerWidth: 1280, innerHeight: 720,
    devicePixelRatio: 1, name: '', closed: false, origin: env.origin,
    matchMedia: function () { return {matches: false, addListener: noop,
                                      addEventListener: noop}; },
    addEventListener: noop, removeEventListener: noop, dispatchEvent: noop,
    setTimeout: timer, setInterval: timer, requestAnimationFrame: timer,
    clearTimeout: noop, clearInterval: noop, cancelAnimationFrame: noop
  };
  Object.keys(browser).forEach(function (k) {
    define(G, k, {value: browser[k], writable: true, configurable: true, enumerable: true});
  });

  function text(s) {
    return s.length > MAX_TEXT ? {type: 'string', length: s.length} : s;
  }
  function isObject(v) { return (typeof v === 'object' && v !== null) || typeof v === 'function'; }
  function get(o, k) { return isObject(o) ? o[k] : undefined; }
  function value(v) {
    var t = typeof v;
    if (t === 'string') return text(v);
    if (t === 'boolean') return v;
    if (t === 'undefined') return null;
    if (v === null) return {type: 'null'};
    return {type: isArray(v) ? 'array' : t};
  }
  function stun(list) {
    if (!isArray(list)) return value(list);
    var urls = [], n = list.length;
    for (var i = 0; i < n && i < MAX_LIST && urls.length < MAX_LIST; i++) {
      var u = get(list[i], 'urls');
      var all = isArray(u) ? u : [u];
      for (var j = 0; j < all.length && j < MAX_LIST && urls.length < MAX_LIST; j++) {
        urls.push(typeof all[j] === 'string' ? text(all[j]) : value(all[j]));
      }
    }
    return {urls: urls, count: n};
  }
  function read(c) {
    if (!isObject(c)) return {type: c === null ? 'null' : typeof c};
    var hosts = get(c, 'hosts'), p2p = get(c, 'p2p');
    return {
      domain: value(get(hosts, 'domain')), muc: value(get(hosts, 'muc')),
      focus: value(get(hosts, 'focus')), anonymousdomain: value(get(hosts, 'anonymousdomain')),
      authdomain: value(get(hosts, 'authdomain')), bosh: value(get(c, 'bosh')),
      websocket: value(get(c, 'websocket')), tokenAuthUrl: value(get(c, 'tokenAuthUrl')),
      disableIframeAPI: value(get(c, 'disableIframeAPI')),
      p2pEnabled: value(get(p2p, 'enabled')), stunServers: stun(get(p2p, 'stunServers'))
    };
  }
  function lineOf(stack) {
    var m = /<input>:(\d+):(\d+)/.exec(stack);
    return m ? [+m[1], +m[2]] : [0, 0];
  }
  function describe(e) {
    var kind = typeof e === 'object' ? (e === null ? 'null' : 'an object') : 'a ' + typeof e;
    var out = {name: kind, message: '', line: 0, column: 0, syntax: false};
    try {
      if (isObject(e)) {
        var n = e.name, m = e.message, s = e.stack;
        if (typeof n === 'string') out.name = n.slice(0, 100);
        if (typeof m === 'string') out.message = m.slice(0, 400);
        if (typeof s === 'string') { var at = lineOf(s); out.line = at[0]; out.column = at[1]; }
        out.syntax = e instanceof SyntaxErr;
      } else if (typeof e === 'string') {
        out.message = e.slice(0, 400);
      }
    } catch (ignored) {}
    return out;
  }

  var error = null, outcome;
  try { indirectEval(src); } catch (e) { error = describe(e); }
  try {
    outcome = stringify({error: error, config: read(G.config)});
  } catch (e) {
    outcome = stringify({error: error || describe(e), config: {type: 'unreadable'}});
  }
  // Drop what the file left in globals while the GIL is still released: the
  // runtime is freed later, holding it.
  try {
    names(G).forEach(function (k) { try { G[k] = undefined; } catch (ignored) {} });
  } catch (ignored) {}
  return outcome;
})(globalThis.__jm_src, globalThis.__jm_env)
""".replace("@MAX_TEXT@", str(MAX_TEXT)).replace("@MAX_LIST@", str(MAX_LIST))


# After the engine stopped a script, this drops what its globals hold, with
# the GIL released: freeing a full heap later, in the runtime's destructor,
# holds the GIL (and so the event loop) for tens of milliseconds.
_SWEEP: Final = r"""
(function () {
  var g = globalThis;
  for (var k in g) { try { g[k] = undefined; } catch (ignored) {} }
  return 0;
})()
"""
# Most time the sweep may take; it also ends by the run's deadline.
_SWEEP_SECONDS: Final = 0.05
# Room the sweep may allocate past a memory limit the script exhausted.
_SWEEP_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EngineResult:
    """What one run gave: the JSON the wrapper returned, or the engine's own error."""

    # The wrapper's JSON text (parsed), or None when the engine stopped it.
    data: dict[str, object] | None
    # The engine's error text when it stopped the script (interrupt, memory).
    engine_error: str
    # Wall seconds the engine ran.
    seconds: float
    # The engine's heap at the end, bytes.
    heap: int


def _location(url: str) -> dict[str, str]:
    """A URL's parts as a browser's ``Location`` shows them (host lowercased, no default port)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    hostname = (parts.hostname or "").lower()
    host = f"[{hostname}]" if ":" in hostname else hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    shown = "" if port is None or (scheme, port) in (("https", 443), ("http", 80)) else str(port)
    host_port = f"{host}:{shown}" if shown else host
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    origin = f"{scheme}://{host_port}"
    return {
        "href": f"{origin}{path}{query}",
        "protocol": f"{scheme}:",
        "host": host_port,
        "hostname": host,
        "port": shown,
        "pathname": path,
        "origin": origin,
    }


def page_env(page_url: str, script_url: str, agent: str) -> str:
    """The page a browser has open, as JSON for the wrapper."""
    env = _location(page_url)
    env["script"] = _location(script_url)["href"]
    env["agent"] = agent
    return json.dumps(env)


def run(
    source: str, env: str, time_limit: float, memory_limit: int, deadline: float | None = None
) -> EngineResult:
    """Evaluate ``source`` with the page environment ``env`` (from ``page_env``).

    ``time_limit`` is in seconds of the process's CPU clock (the binding uses
    ``clock()``): a busy loop is stopped after that much CPU, which is that
    much wall time unless the machine is starved. Nothing runs in the engine
    after ``deadline`` (``time.monotonic()``), when given.
    """
    started = time.perf_counter()
    ctx = quickjs.Context()
    try:
        ctx.set_memory_limit(memory_limit)
        ctx.set_max_stack_size(_STACK_BYTES)
        ctx.set("__jm_src", source)
        ctx.set("__jm_env", env)
        ctx.set_time_limit(time_limit)
        data: dict[str, object] | None = None
        engine_error = ""
        try:
            out = ctx.eval(_WRAPPER)
        except quickjs.JSException as exc:
            engine_error = str(exc)
            heap = _heap(ctx)  # before the sweep frees it: it tells a memory stop
            _sweep(ctx, memory_limit, deadline)
        else:
            heap = _heap(ctx)
            parsed = json.loads(out) if isinstance(out, str) else None
            if isinstance(parsed, dict):
                data = parsed
            else:
                engine_error = "the wrapper returned no result"
        return EngineResult(data, engine_error, time.perf_counter() - started, heap)
    finally:
        del ctx


def _sweep(ctx: quickjs.Context, memory_limit: int, deadline: float | None) -> None:
    budget = _SWEEP_SECONDS
    if deadline is not None:
        budget = min(budget, deadline - time.monotonic())
    if budget <= 0.001:
        return
    ctx.set_memory_limit(memory_limit + _SWEEP_BYTES)
    ctx.set_time_limit(budget)
    # Best effort: the destructor frees whatever is left.
    with contextlib.suppress(quickjs.JSException):
        ctx.eval(_SWEEP)


def _heap(ctx: quickjs.Context) -> int:
    usage = ctx.memory()
    size = usage.get("malloc_size") if isinstance(usage, dict) else None
    return size if isinstance(size, int) else 0
