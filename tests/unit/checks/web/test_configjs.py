"""config.js run in the sandbox: the values a browser gets, and hostile files.

Every case goes through the real engine (QuickJS); tests that need the web
ladder, a deadline or the cache are in test_configjs_limits.py.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.checks.web.configjs import MAX_SOURCE, Limits, Reader, evaluate
from monitor.checks.web.configjs.facts import Verdict
from monitor.model import ConfigFacts, Reason

PAGE = "https://meet.example.org/"

# Shape 1: one object literal.
OBJECT_LITERAL = """
/* eslint-disable */
var config = {
    // Connection
    hosts: {
        domain: 'school.example',
        anonymousdomain: "guest.school.example",
        authdomain: 'school.example',
        muc: 'conference.school.example',
        focus: 'focus.school.example',
    },
    bosh: '//school.example/http-bind',
    websocket: 'wss://school.example/xmpp-websocket',
    tokenAuthUrl: 'https://lms.example/jitsi/token?room={room}',
    disableIframeAPI: false,
    p2p: { enabled: true, stunServers: [{ urls: 'stun:stun.example:443' }] },
    getroomnode: function (path) { return 'x' + path; },
    makeJsonParserHappy: 'even if last key had a trailing comma'
};
"""

# Shape 3: member assignments, as a container deployment writes them, plus
# lines a hosted deployment appends.
ASSIGNMENTS = """
var config = {};
if (!config.hasOwnProperty('hosts')) config.hosts = {};
config.hosts.domain = 'meet.jitsi';
var subdir = '<!--# echo var="subdir" default="" -->';
if (subdir.startsWith('<!--')) {
    subdir = '';
}
config.hosts.muc = 'muc.meet.jitsi';
config.bosh = '/' + subdir + 'http-bind';
config.websocket = 'wss://meet.example.com/' + subdir + 'xmpp-websocket'
config['disableIframeAPI'] = false;
config.disableIframeAPI=true;
"""


def facts(js: str | bytes, page: str = PAGE) -> ConfigFacts:
    found = evaluate(js, page)
    assert found.reason in (Reason.OK, Reason.NO_SIGNALLING_URL), found.detail
    assert found.facts is not None
    return found.facts


def outcome(js: str | bytes, limits: Limits | None = None) -> Verdict:
    return evaluate(js, PAGE, limits)


def test_object_literal() -> None:
    assert facts(OBJECT_LITERAL) == ConfigFacts(
        domain="school.example",
        anonymousdomain="guest.school.example",
        authdomain="school.example",
        muc="conference.school.example",
        focus="focus.school.example",
        bosh="https://school.example/http-bind",
        websocket="wss://school.example/xmpp-websocket",
        token_auth_url="https://lms.example/jitsi/token?room={room}",
        disable_iframe_api=False,
        p2p_enabled=True,
        stun_servers=("stun:stun.example:443",),
    )


def test_member_assignments_last_one_wins() -> None:
    found = facts(ASSIGNMENTS)
    assert (found.domain, found.muc) == ("meet.jitsi", "muc.meet.jitsi")
    assert found.bosh == "https://meet.example.org/http-bind"
    assert found.websocket == "wss://meet.example.com/xmpp-websocket"
    assert found.disable_iframe_api is True


def test_urls_resolve_against_the_page() -> None:
    js = "var config = {bosh: 'http-bind', websocket: '//ws.example.org/x'};"
    found = facts(js, "https://meet.example.org/acme/")
    assert found.bosh == "https://meet.example.org/acme/http-bind"
    assert found.websocket == "https://ws.example.org/x"
    found = facts("var config = {bosh: '/http-bind'};", "http://meet.example.org:8080/acme/")
    assert found.bosh == "http://meet.example.org:8080/http-bind"


def test_location_is_the_page() -> None:
    js = """
    var config = {
        hosts: { domain: location.hostname },
        bosh: document.location.origin + location.pathname + 'http-bind',
        websocket: (location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host
            + '/' + location.pathname.split('/')[1] + '/xmpp-websocket',
        tokenAuthUrl: String(self.location) + '|' + globalThis.location.port + '|'
            + document.currentScript.src,
    };
    """
    found = facts(js, "https://Meet.Example.org:8443/acme/")
    assert found.domain == "meet.example.org"
    assert found.bosh == "https://meet.example.org:8443/acme/http-bind"
    assert found.websocket == "wss://meet.example.org:8443/acme/xmpp-websocket"
    assert found.token_auth_url == (
        "https://meet.example.org:8443/acme/|8443|https://meet.example.org:8443/acme/config.js"
    )
    # a default port is not shown, as in a browser
    shown = facts("var config = {tokenAuthUrl: location.host};", "https://x.example:443/")
    assert shown.token_auth_url == "x.example"


def test_url_built_by_a_function_call() -> None:
    js = """
    function url(path) { return ['wss:', '', 'meet.example.org', path].join('/'); }
    var config = { websocket: url('xmpp-websocket'),
                   hosts: { domain: 'meet.example.org', muc: `conference.${'meet.example.org'}` } };
    config.bosh = (function () { return '/http-bind'; })();
    """
    found = facts(js)
    assert found.websocket == "wss://meet.example.org/xmpp-websocket"
    assert found.bosh == "https://meet.example.org/http-bind"
    assert found.muc == "conference.meet.example.org"


def test_browser_stubs_are_inert() -> None:
    js = """
    var fired = false;
    setTimeout(function () { fired = true; }, 0);
    Promise.resolve().then(function () { fired = true; });
    console.log('x'); localStorage.setItem('a', 'b');
    document.createElement('script').setAttribute('src', 'https://evil.example/x.js');
    var config = { websocket: 'wss://x.example/ws',
                   tokenAuthUrl: [typeof fetch, typeof XMLHttpRequest, typeof WebSocket,
                                  typeof require, typeof std, typeof os,
                                  String(localStorage.getItem('a')), navigator.language].join() };
    if (fired) { config.websocket = 'wss://timers.ran/'; }
    """
    found = facts(js)
    assert found.websocket == "wss://x.example/ws", "timers and jobs never run"
    assert found.token_auth_url == (
        "undefined,undefined,undefined,undefined,undefined,undefined,null,en-US"
    )


def test_each_evaluation_starts_clean() -> None:
    reader = Reader()
    reader.evaluate(
        "Object.prototype.leak = 'x'; globalThis.other = 'y'; var config = {};"
        "Array.prototype.push = null; String.prototype.split = null;",
        PAGE,
    )
    found = reader.evaluate(
        "var config = {websocket: 'wss://a/' + typeof ({}).leak + typeof other,"
        " bosh: 'a,b'.split(',').length + ''};",
        PAGE,
    )
    assert found.facts is not None
    assert found.facts.websocket == "wss://a/undefinedundefined"


def test_runtime_error_keeps_what_ran_before() -> None:
    js = "var config = { websocket: 'wss://a.example/ws' };\nconfig.p2p.stunServers = [];\n"
    found = outcome(js)
    assert found.reason is Reason.OK
    assert found.facts is not None
    assert found.facts.websocket == "wss://a.example/ws"
    assert "threw TypeError at line 2" in found.detail


def test_non_string_fields_are_not_strings() -> None:
    js = """var config = { hosts: { domain: 42, muc: ['conference.x'] }, websocket: 1,
             bosh: { toString: function () { return '/http-bind'; } },
             disableIframeAPI: 'yes', p2p: { enabled: 1, stunServers: 'stun:x' },
             tokenAuthUrl: null };"""
    found = outcome(js)
    # hosts.domain is there but is a number: what the browser would use, so a failure
    assert found.reason is Reason.CONFIGJS_BAD_HOST
    assert found.detail == "config.js sets hosts.domain to a number, which is not a host name"
    assert found.facts == ConfigFacts()
    js = js.replace("domain: 42, muc: ['conference.x']", "domain: 'x'")
    found = outcome(js)
    assert found.reason is Reason.NO_SIGNALLING_URL
    assert "(websocket is a number) (bosh is an object)" in found.detail


def test_misleading_reason_only_when_really_missing() -> None:
    assert outcome("var config = {hosts: {domain: 'x'}};").reason is Reason.NO_SIGNALLING_URL
    # built by a call, or set after the object: not missing
    assert outcome("var config = {}; config.bosh = ['/', 'http-bind'].join('');").reason is (
        Reason.OK
    )
    # no config object at all is another problem
    missing = outcome("var konfig = {bosh: '/http-bind'};")
    assert missing.reason is Reason.CONFIGJS_ERROR
    assert missing.detail == "config.js defines no config object"
    assert outcome("var config = 'x';").detail == "config.js sets config to string"


def test_strings_are_bounded() -> None:
    long = "a" * 5000
    js = f"var config = {{ websocket: 'wss://x/{long}', bosh: '/http-bind',"
    js += f" hosts: {{ domain: '{long}.example', muc: 'a b' }} }};"
    found = outcome(js)
    assert found.reason is Reason.CONFIGJS_BAD_HOST
    assert found.detail == (
        "config.js sets hosts.domain to a string of 5008 characters, which is not a host name"
    )
    assert found.facts is not None
    assert found.facts.websocket is None
    assert found.facts.bosh == "https://meet.example.org/http-bind"
    assert (found.facts.domain, found.facts.muc) == (None, None)


def test_stun_servers_are_bounded() -> None:
    js = """var many = []; for (var i = 0; i < 100000; i++) many.push({urls: 'stun:s' + i});
            many[0] = {urls: ['stun:a', 'turn:b', 7, 'http://not-stun']}; many[1] = 'junk';
            var config = { websocket: 'wss://x/ws', p2p: { stunServers: many } };"""
    found = facts(js)
    assert found.stun_servers[:3] == ("stun:a", "turn:b", "stun:s2")
    assert len(found.stun_servers) <= 16


def test_escapes_and_unicode() -> None:
    js = r"""var config = { tokenAuthUrl: 'https://lms.example/it\'s',
             bosh: "https://meet.example.org/http\u002Dbind",
             websocket: 'wss://x/\ud83d\ude00', hosts: { domain: '\ud800' } };"""
    found = facts(js.replace("domain: '\\ud800'", "domain: 'x'"))
    assert found.token_auth_url == "https://lms.example/it's"
    assert found.bosh == "https://meet.example.org/http-bind"
    assert found.websocket == "wss://x/\U0001f600"
    refused = outcome(js)
    assert refused.reason is Reason.CONFIGJS_BAD_HOST, "a lone surrogate is not a host name"
    assert refused.facts is not None
    assert refused.facts.domain is None
    assert "hosts.domain" in refused.detail


def test_byte_order_mark_and_nul() -> None:
    assert facts("\ufeffvar config = {bosh: '/b'};".encode()).bosh == "https://meet.example.org/b"
    found = facts(b"var config = {bosh: '/b', tokenAuthUrl: 'a\x00b'};")
    assert (found.bosh, found.token_auth_url) == ("https://meet.example.org/b", None)


@pytest.mark.parametrize(
    ("js", "line"),
    [
        ("var config = {\n  hosts: { domain: 'x' },\n", 3),  # unclosed object
        ("var config = { bosh: '/b' };\n}}}));\n", 2),  # stray closers
        ('var subdomain = "<!--# echo var="subdomain" default="" -->";\n', 1),  # raw SSI
        ("<html><body>404 Not Found</body></html>", 1),
        ("var config = { websocket: 'wss://x" + "a" * 16000 + "\\", 1),
        ("var config = { websocket: 'wss://x" + "a" * 60000 + "\\", 1),
        ("var config = {\n  websocket: `wss://x/${", 2),
    ],
    ids=["unclosed", "stray", "ssi", "html", "unterminated-16k", "unterminated-60k", "template"],
)
def test_syntax_errors(js: str, line: int) -> None:
    started = time.process_time()  # CPU time: other programs on the machine cannot stretch it
    found = outcome(js)
    assert time.process_time() - started < 1
    assert found.reason is Reason.CONFIGJS_ERROR
    assert found.facts is None, "a browser runs nothing of a file it cannot parse"
    assert found.detail.startswith("config.js does not parse: SyntaxError")
    assert f"at line {line}:" in found.detail


def test_server_text_in_details_is_bounded() -> None:
    js = "throw new Error('\\u001b[31m' + 'x'.repeat(5000));"
    found = outcome(js)
    assert found.reason is Reason.CONFIGJS_ERROR
    assert len(found.detail) <= 300
    assert "\x1b" not in found.detail


def test_empty_and_binary_bodies() -> None:
    assert outcome("").reason is Reason.CONFIGJS_ERROR
    assert outcome(b"\xff\xfe\x00garbage").reason is Reason.CONFIGJS_ERROR


def test_too_large_is_not_evaluated() -> None:
    found = outcome(b"//" + b"x" * MAX_SOURCE)
    assert found.reason is Reason.CONFIGJS_ERROR
    assert "at most 1 MiB" in found.detail


def test_deep_nesting() -> None:
    js = "var config = " + "{a: " * 5000 + "1" + "}" * 5000 + "; config.websocket = 'wss://x/ws';"
    assert outcome(js).reason is Reason.CONFIGJS_ERROR  # the engine's own limit
    js = "var config = {websocket: 'wss://x/ws'}; function f(n) { return f(n + 1); } f(0);"
    found = outcome(js)
    assert found.reason is Reason.OK
    assert "RangeError" in found.detail


SHORT = Limits(time=0.25)


@pytest.mark.parametrize(
    "js",
    [
        "while (true) {}",
        "var config = {websocket: 'wss://x/ws'}; for (;;) {}",
        "try { while (true) {} } catch (e) {} var config = {};",
        "try { while (true) {} } finally { while (true) {} }",
        "/(a+)+$/.test('a'.repeat(40) + 'b');",
        "var config = { get websocket() { for (;;) {} } };",
        "throw { toString: function () { for (;;) {} } };",
        "Error.prototype.toString = function () { for (;;) {} }; for (;;) {}",
        "Object.prototype[Symbol.toPrimitive] = function () { for (;;) {} }; for (;;) {}",
        "Error.prepareStackTrace = function () { for (;;) {} }; for (;;) {}",
        "Object.defineProperty(globalThis, 'x', {set: function () { for (;;) {} }});"
        " var config = {};",
    ],
    ids=[
        "loop",
        "loop-after-config",
        "uncatchable",
        "finally",
        "regex",
        "getter",
        "throw-object",
        "error-tostring",
        "toprimitive",
        "preparestacktrace",
        "global-setter",
    ],
)
def test_endless_work_is_stopped(js: str) -> None:
    started = time.process_time()  # CPU time: what the engine burnt, whatever the load
    found = outcome(js, SHORT)
    elapsed = time.process_time() - started
    assert elapsed < 2, f"took {elapsed:.2f} s of CPU"
    if "global-setter" in js or "throw {" in js:
        return  # ends as soon as the file does; what matters is that it ends
    assert found.reason is Reason.CONFIGJS_TIMEOUT, found.detail
    assert found.facts is None
    assert found.detail == "config.js was still running after 250 ms; stopped"


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _bomb(size: int) -> str:
    """A file of ``size`` bytes that doubles a string and lists copies of it."""
    seed = "A" * (size // 2)
    return (
        f"var s = '{seed}'; var copies = [s, s, s];\n"
        "for (var i = 0; i < 40; i++) { s = s + s; copies.push(s, s + i); }\n"
        "var config = { websocket: copies.join(',') };\n"
    )


@pytest.mark.parametrize(
    "js",
    [
        _bomb(40 * 1024),
        _bomb(524 * 1024),
        "var a = []; for (;;) a.push({x: a.length});",
        "var a = []; for (;;) { var o = {}; o.self = o; a.push(o); }",
        "var config = {websocket: 'x'.repeat(1 << 28)};",
        "var config = {websocket: new Array(1e8).fill('x').join('')};",
    ],
    ids=["double-40k", "double-524k", "objects", "cycles", "repeat", "array"],
)
def test_memory_bombs_are_stopped(js: str) -> None:
    outcome("var config = {};")  # the engine loaded before the first reading
    before = _rss_mib()
    started = time.process_time()  # CPU time: what the engine burnt, whatever the load
    found = outcome(js, SHORT)
    elapsed = time.process_time() - started
    growth = _rss_mib() - before
    assert found.reason in (Reason.CONFIGJS_MEMORY, Reason.CONFIGJS_TIMEOUT), found.detail
    assert found.facts is None
    assert elapsed < 2
    assert growth < 100, f"RSS grew {growth:.0f} MiB"


def test_memory_limit_is_the_reason() -> None:
    found = outcome("var a = []; for (;;) a.push({x: a.length});", Limits(time=5, memory=8 << 20))
    assert found.reason is Reason.CONFIGJS_MEMORY
    assert "8 MiB" in found.detail


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}[]();,.:=+!?'\"`/*\\\n abcvar<>-#")), max_size=300))
def test_never_raises_on_arbitrary_input(text: str) -> None:
    assert isinstance(outcome(text, SHORT), Verdict)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=500))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(outcome(data, SHORT), Verdict)


# -- a value that is there but unusable is a failure, never a default ---------------

_SSI_RAW = 'conference.<!--# echo var="subdomain" default="" -->meet.example'


@pytest.mark.parametrize("key", ["domain", "muc", "anonymousdomain", "authdomain", "focus"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (
            "'conference.' + '<!--# echo var=\"subdomain\" default=\"\" -->' + 'meet.example'",
            f"'{_SSI_RAW}'",
        ),
        ("'<b>meet.example</b>'", "'<b>meet.example</b>'"),
        ("'meet example'", "'meet example'"),
        ("'meet.example\\x1b[31m\\n'", "'meet.example\\x1b[31m\\n'"),
        ("7", "a number"),
        ("{}", "an object"),
    ],
)
def test_an_unusable_host_fails_configjs(key: str, value: str, shown: str) -> None:
    hosts = {"domain": "'meet.example'", key: value}
    body = ", ".join(f"{k}: {v}" for k, v in hosts.items())
    found = outcome(f"var config = {{ hosts: {{ {body} }}, websocket: 'wss://meet.example/ws' }};")
    assert found.reason is Reason.CONFIGJS_BAD_HOST
    assert found.detail.startswith(f"config.js sets hosts.{key} to {shown}, which is not a host")
    assert "names no" not in found.detail
    assert found.facts is not None
    assert getattr(found.facts, key) is None
    if key == "muc":  # never Jitsi's default in its place
        assert (found.facts.muc, found.facts.muc_fallback) == (None, False)
    hinted = "`ssi on;`" in found.detail
    assert hinted == ("<!--#" in shown)


def test_the_value_is_quoted_escaped_and_bounded() -> None:
    long = "\u202e" + "<x>" * 200
    found = outcome(f"var config = {{ hosts: {{ muc: '{long}' }}, bosh: '/http-bind' }};")
    assert found.reason is Reason.CONFIGJS_BAD_HOST
    assert len(found.detail) <= 300
    assert "'\\u202e<x><x>" in found.detail
    assert "\u202e" not in found.detail
    assert "<x>...'" in found.detail, "cut, and the cut is marked"


@pytest.mark.parametrize("unset", ["", "muc: null,", "muc: '',", "muc: undefined,"])
def test_only_an_unset_muc_gets_the_default(unset: str) -> None:
    found = outcome(
        f"var config = {{ hosts: {{ {unset} domain: 'meet.example' }}, bosh: '/http-bind' }};"
    )
    assert found.reason is Reason.OK
    assert found.facts is not None
    assert (found.facts.muc, found.facts.muc_fallback) == ("conference.meet.example", True)
    assert found.detail == "config.js names no hosts.muc: conference.meet.example assumed"
