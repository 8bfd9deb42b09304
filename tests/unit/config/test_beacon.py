"""The ``beacon`` block and a pool's ``nearest``: values, defaults and refusals."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, parse_config

SERVERS = (
    "servers:\n  - {name: a, url: 'https://a.example/'}\n  - {name: b, url: 'https://b.example/'}\n"
)


def test_the_defaults_take_no_beacon_and_score_by_the_monitor() -> None:
    cfg = parse_config(SERVERS + "pools:\n  - {name: moodle, servers: [a, b]}\n")
    assert cfg.beacon.origins == []
    assert (cfg.beacon.window, cfg.beacon.period) == (3600.0, 1800.0)
    assert (cfg.beacon.min_samples, cfg.beacon.min_prefixes) == (30, 5)
    assert cfg.pools[0].settings().nearest == "monitor"


def test_the_issues_config_shape() -> None:
    cfg = parse_config(
        SERVERS + "beacon:\n"
        '  origins: ["https://moodle.example.edu", "https://moodle.example.edu:443/",'
        ' "http://lms.example:8080"]\n'
        "  regions: [campus-north, campus-south, campus-north]\n"
        "  window: 1h\n  min_samples: 30\n  min_prefixes: 5\n  period: 0s\n"
        "pools:\n  - name: moodle\n    servers: [a, b]\n    nearest: users\n"
    )
    assert cfg.beacon.origins == ["https://moodle.example.edu", "http://lms.example:8080"]
    assert cfg.beacon.regions == ["campus-north", "campus-south"]
    assert cfg.beacon.period == 0.0
    assert cfg.pools[0].settings().nearest == "users"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("beacon: {origins: ['https://moodle.example.edu/course']}\n", "is not an origin"),
        ("beacon: {origins: ['moodle.example.edu']}\n", "is not an origin"),
        ("beacon: {origins: ['https://user@moodle.example.edu']}\n", "is not an origin"),
        ("beacon: {regions: [all]}\n", "is not a region"),
        ("beacon: {regions: ['Campus North']}\n", "is not a region"),
        ("beacon: {regions: ['<b>x\\e[2J']}\n", "is not a region"),
        ("beacon: {regions: [" + ", ".join(f"r{n}" for n in range(33)) + "]}\n", "at most 32"),
        ("beacon: {window: 10s}\n", "window must be between"),
        ("beacon: {period: -1s}\n", ""),
        ("beacon: {min_prefixes: 0}\n", "greater than or equal to 1"),
        ("beacon: {origin: []}\n", "unknown key"),
        ("pools:\n  - {name: p, servers: [a], nearest: browsers}\n", "'monitor' or 'users'"),
        ("pools:\n  - {name: p, servers: [a], nearest: users}\n", "needs beacon.origins"),
    ],
)
def test_bad_values_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SERVERS + text)
    assert message in str(caught.value)
