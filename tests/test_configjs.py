"""config.js is read, never run: the three shapes, SSI leftovers, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model import ConfigFacts
from monitor.probes.configjs import evaluate, parse_config_js

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

# Shape 2: string concatenation with nginx SSI placeholders, unfilled.
SSI_CONCAT = """
var subdir = '<!--# echo var="subdir" default="" -->';
var subdomain = '<!--# echo var="subdomain" default="" -->';
if (subdomain) {
    subdomain = subdomain.substr(0, subdomain.length - 1).split('.').join('_') + '.';
}
var config = {
    hosts: {
        domain: 'meet.example.net',
        muc: 'conference.' + subdomain + 'meet.example.net'
    },
    bosh: 'https://meet.example.net/' + subdir + 'http-bind',
    websocket: 'wss://meet.example.net/' + subdir + 'xmpp-websocket',
    disableIframeAPI: true,
};
"""

# Shape 3: member assignments, as a container deployment writes them, plus
# lines a hosted deployment appends.
ASSIGNMENTS = """
// Jitsi Meet configuration.
var config = {};

if (!config.hasOwnProperty('hosts')) config.hosts = {};

config.hosts.domain = 'meet.jitsi';
config.focusUserJid = 'focus@auth.meet.jitsi';

var subdir = "<!--# echo var="subdir" default="" -->";
var subdomain = "<!--# echo var="subdomain" default="" -->";
if (subdir.startsWith('<!--')) {
    subdir = '';
}
if (subdomain) {
    subdomain = subdomain.substr(0,subdomain.length-1).split('.').join('_').toLowerCase() + '.';
}
config.hosts.muc = 'muc.' + subdomain + 'meet.jitsi';
config.hosts.anonymousdomain = 'guest.meet.jitsi';
config.bosh = '/' + subdir + 'http-bind';
config.websocket = 'wss://meet.example.com/' + subdir + 'xmpp-websocket'
config['disableIframeAPI'] = false;
config.disableIframeAPI=true;
"""


def test_object_literal() -> None:
    assert parse_config_js(OBJECT_LITERAL) == ConfigFacts(
        domain="school.example",
        anonymousdomain="guest.school.example",
        authdomain="school.example",
        muc="conference.school.example",
        focus="focus.school.example",
        bosh="//school.example/http-bind",
        websocket="wss://school.example/xmpp-websocket",
        token_auth_url="https://lms.example/jitsi/token?room={room}",
        disable_iframe_api=False,
    )


def test_ssi_placeholders_read_as_their_default() -> None:
    facts = parse_config_js(SSI_CONCAT)
    assert facts.muc == "conference.meet.example.net"
    assert facts.bosh == "https://meet.example.net/http-bind"
    assert facts.websocket == "wss://meet.example.net/xmpp-websocket"
    assert facts.disable_iframe_api is True


def test_filled_ssi_values_are_kept() -> None:
    filled = SSI_CONCAT.replace('<!--# echo var="subdir" default="" -->', "tenant/")
    assert parse_config_js(filled).websocket == "wss://meet.example.net/tenant/xmpp-websocket"


def test_member_assignments() -> None:
    facts = parse_config_js(ASSIGNMENTS)
    assert facts.domain == "meet.jitsi"
    assert facts.muc == "muc.meet.jitsi"
    assert facts.anonymousdomain == "guest.meet.jitsi"
    assert facts.bosh == "/http-bind"
    assert facts.websocket == "wss://meet.example.com/xmpp-websocket"
    assert facts.disable_iframe_api is True, "the last assignment wins"


def test_unknown_branch_does_not_overwrite_known_values() -> None:
    js = """
    var config = { websocket: 'wss://a/xmpp-websocket' };
    if (window.location.search.indexOf('x') > -1) { config.websocket = 'wss://b/ws'; }
    if (someFlag) { config.bosh = '/http-bind'; }
    if (false) { config.disableIframeAPI = true; } else { config.disableIframeAPI = false; }
    """
    facts = parse_config_js(js)
    assert facts.websocket == "wss://a/xmpp-websocket"
    assert facts.bosh == "/http-bind", "a known value fills an empty field"
    assert facts.disable_iframe_api is False


def test_escapes_and_templates() -> None:
    js = r"""
    var host = "meet.example.org";
    var config = {
        hosts: { domain: 'meet.example.org', muc: `conference.meet.example.org` },
        tokenAuthUrl: 'https://lms.example/it\'s',
        websocket: `wss://${host}/xmpp-websocket`,
        bosh: "https://meet.example.org/http\u002Dbind",
    };
    """
    facts = parse_config_js(js)
    assert facts.token_auth_url == "https://lms.example/it's"
    assert facts.muc == "conference.meet.example.org"
    assert facts.websocket is None, "a template with substitutions is not guessed"
    assert facts.bosh == "https://meet.example.org/http-bind"


def test_unsupported_constructs_are_skipped() -> None:
    js = """
    'use strict';
    function helper(a) { return a * 2; }
    const flags = [1, 2, 3].map(x => x + 1);
    var config = {
        hosts: { domain: 'x.example' },
        analytics: { whitelist: [ 'a', 'b' ] },
        compute: helper(2) * 3 + 1,
        arrow: (a, b) => { return a; },
        regexish: 10 / 2,
        ...other,
        [computed]: 1,
        method() { return 1; },
        websocket: 'wss://x.example/xmpp-websocket'
    };
    for (var i = 0; i < 3; i++) { config.bosh = 'nope'; }
    config.disableIframeAPI = location.hostname === 'x' ? true : false;
    """
    facts = parse_config_js(js)
    assert facts.domain == "x.example"
    assert facts.websocket == "wss://x.example/xmpp-websocket"
    assert facts.disable_iframe_api is None, "an expression we cannot decide stays unknown"


def test_non_string_fields_are_ignored() -> None:
    js = "var config = { hosts: { domain: 42 }, websocket: ['a'], disableIframeAPI: 'yes' };"
    assert parse_config_js(js) == ConfigFacts()


def test_asi_without_semicolons() -> None:
    js = "var config = {}\nconfig.websocket = 'wss://a/ws'\nconfig.bosh = '/http-bind'\n"
    facts = parse_config_js(js)
    assert (facts.websocket, facts.bosh) == ("wss://a/ws", "/http-bind")


def test_not_javascript_at_all() -> None:
    assert parse_config_js(b"<html><body>404 Not Found</body></html>") == ConfigFacts()
    assert parse_config_js(b"\xff\xfe\x00garbage") == ConfigFacts()
    assert parse_config_js("") == ConfigFacts()


def test_deep_nesting_is_bounded() -> None:
    js = "var config = " + "{a: " * 5000 + "1" + "}" * 5000 + "; config.websocket = 'wss://x/ws';"
    assert parse_config_js(js).websocket == "wss://x/ws"
    # unclosed brackets make the rest of the file one broken expression
    js = "var config = " + "[" * 50000 + "; config.websocket = 'wss://x/ws';"
    assert parse_config_js(js) == ConfigFacts()
    js = "var b = " + "(" * 50000 + "1" + ")" * 50000 + "; var c = 2;"
    assert evaluate(js)["c"] == 2.0


def test_unterminated_constructs() -> None:
    for js in [
        "var config = { websocket: 'wss://x",
        "var config = /* never closed",
        "var config = {",
    ]:
        assert parse_config_js(js).websocket is None


def test_large_input() -> None:
    js = "var config = {};\n" + "config.a = 'x' + 'y';\n" * 20000 + "config.bosh = '/b';"
    assert parse_config_js(js).bosh == "/b"
    # past the first 512 KiB nothing is read
    assert parse_config_js(js.replace("config.a", "config.aa" + "a" * 30)).bosh is None


@pytest.mark.parametrize(
    "js",
    [
        "var config = " + "!" * 5000 + "1;",
        "var config = " + "- " * 5000 + "1;",
        "var config = " + "typeof " * 5000 + "1;",
        "if (1) " * 5000 + "var config = {};",
        "if (a) {} " + "else if (a) {} " * 5000,
        "var config = {n: 0x" + "f" * 400 + "};",
        "var s = 'aaaaaaaa';" + "s = s + s;" * 40 + "var config = {websocket: s};",
        "`" + "\\`" * 20000,
        '"' + '\\"' * 20000,
        "var config = a" + "(1)" * 20000 + ";",
        "{" * 5000,
        "var config = {}; config[" + "[" * 3000 + "'a'] = 1;",
    ],
    ids=lambda js: js[:24],
)
def test_hostile_input_is_survived(js: str) -> None:
    facts = parse_config_js(js)
    assert facts.websocket is None or len(facts.websocket) <= 2048


def test_bad_host_names_are_dropped() -> None:
    js = r"var config = { hosts: { domain: '\ud800', muc: 'a b', focus: 'f.x' }, bosh: '\ud800' };"
    facts = parse_config_js(js)
    assert (facts.domain, facts.muc, facts.focus) == (None, None, "f.x")
    assert facts.bosh == "\ufffd", "a lone surrogate becomes a replacement character"
    js = r"var config = { websocket: 'wss://x/\ud83d\ude00' };"
    assert parse_config_js(js).websocket == "wss://x/\U0001f600"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}[]();,.:=+!?'\"`/*\\\n abcvar<>-#")), max_size=300))
def test_never_raises_on_arbitrary_input(text: str) -> None:
    parse_config_js(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=500))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    parse_config_js(data)
