"""servers.yaml: defaults, validation, and errors that name file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config, parse_config, parse_duration
from tests.support.paths import ROOT
from tests.support.sites import rsa_pem


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_shipped_config_is_valid() -> None:
    cfg = load_config(ROOT / "servers.yaml")
    names = [t.name for t in cfg.targets()]
    assert "meet-jit-si" in names
    for target in cfg.targets():
        assert target.interval >= 60, "be gentle with public servers"
        assert target.url.startswith("https://")


def test_defaults_fill_every_server() -> None:
    cfg = parse_config(
        """
location: eu-west
defaults:
  interval: 5m
  timeout: 20s
servers:
  - name: a
    url: https://meet.example.org
  - name: b
    url: http://127.0.0.5:8080/jitsi
    kind: public
    interval: 90s
    timeout: 1m
    labels: {team: it}
"""
    )
    a, b = cfg.targets()
    assert cfg.location == "eu-west"
    assert (a.interval, a.timeout, a.kind, a.url) == (
        300,
        20,
        "self_hosted",
        "https://meet.example.org/",
    )
    assert (b.interval, b.timeout, b.kind) == (90, 60, "public")
    assert b.url == "http://127.0.0.5:8080/jitsi/"
    assert b.labels == (("team", "it"),)
    assert a.tls_verify is True


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (60, 60.0),
        (1.5, 1.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("500ms", 0.5),
        ("2", 2.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "5 minutes", "m", "-", True, None, "1d", "inf", "nan", float("inf"), -1, "1e3"]
)
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_every_problem_is_reported_with_its_line() -> None:
    found = problems(
        """location: x
defaults:
  timout: 5s
servers:
  - name: good
    url: https://a.example
  - name: bad one
    url: ftp://b.example
    intervall: 5
  - name: c
    url: https://c.example
    kind: hosted
"""
    )
    assert found == [
        "s.yaml:3: defaults.timout: unknown key; did you mean 'timeout'? "
        "(known keys: interval, timeout, max_body_bytes, max_redirects, tls, signalling, media)",
        "s.yaml:7: servers[1].name: a server name is 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit",
        "s.yaml:8: servers[1].url: url must start with https:// or http://",
        "s.yaml:9: servers[1].intervall: unknown key; did you mean 'interval'? "
        "(known keys: name, url, kind, interval, timeout, labels, tls, signalling, jwt, media)",
        "s.yaml:12: servers[2].kind: Input should be 'public', 'self_hosted' or 'jaas'",
    ]


def test_missing_required_key_points_at_the_server() -> None:
    assert problems("servers:\n  - name: a\n  - url: https://x\n") == [
        "s.yaml:2: servers[0].url: required key is missing",
        "s.yaml:3: servers[1].name: required key is missing",
    ]


def test_cross_field_problems_name_the_field() -> None:
    found = problems(
        """servers:
  - name: a
    url: https://a.example
  - name: a
    url: https://b.example
    interval: 10s
    timeout: 30s
"""
    )
    assert found == [
        "s.yaml:4: servers[1].name: server name 'a' is used twice",
        "s.yaml:7: servers[1].timeout: timeout 30s is longer than the interval 10s",
    ]


def test_duplicate_keys_are_errors() -> None:
    assert problems("servers:\n  - name: a\n    url: https://a\n    url: https://b\n") == [
        "s.yaml:4: servers[0].url: key appears twice"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "s.yaml: the file is empty"),
        ("- a\n- b\n", "s.yaml:1: the top level must be a mapping of keys"),
        ("servers: [\n", "not valid YAML"),
        ("servers: x\n", "s.yaml:1: servers: Input should be a valid list"),
        ("listen: {port: 70000}\n", "s.yaml:1: listen.port: Input should be less than or equal"),
        ("dns: {nameservers: [dns.example]}\n", "is not an IP address"),
        ("servers:\n- {name: a, url: 'https://u:p@x'}\n", "must not carry a user name"),
        ("servers:\n- {name: a, url: 'https://x/?a=1'}\n", "must not have a query"),
        ("servers:\n- {name: a, url: 'https://x', labels: {server: y}}\n", "used by the monitor"),
        ("servers:\n- {name: a, url: 'https://x', labels: {1x: y}}\n", "not a valid Prometheus"),
        ("servers:\n- {name: a, url: 'https://x', interval: 0.5}\n", "between 1s and 24h"),
        ("contact: 'a (b)'\n", "without parentheses"),
        ("defaults: {interval: .inf}\n", "not a duration"),
        ("defaults: {timeout: .nan}\n", "not a duration"),
        ("defaults: {interval: 1.0e+300}\n", "between 1s and 24h"),
        ("defaults: {timeout: 2h, interval: 3h}\n", "at most 1h"),
    ],
)
def test_bad_configs(text: str, message: str) -> None:
    found = problems(text)
    assert any(message in p for p in found), found


def test_ca_file_is_relative_to_the_config(tmp_path: Path, ca_file: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(ca_file.read_bytes())
    path = tmp_path / "servers.yaml"
    path.write_text("servers:\n- name: a\n  url: https://x\n  tls: {ca_file: ca.pem}\n")
    (target,) = load_config(path).targets()
    assert target.ca_file == tmp_path / "ca.pem"
    path.write_text("servers:\n- name: a\n  url: https://x\n  tls: {ca_file: nope.pem}\n")
    with pytest.raises(ConfigError, match=r"servers\[0\].tls.ca_file: no such file"):
        load_config(path)
    (tmp_path / "ca.pem").write_text("not a certificate")
    path.write_text("servers:\n- name: a\n  url: https://x\n  tls: {ca_file: ca.pem}\n")
    with pytest.raises(ConfigError, match=r"tls.ca_file: not a PEM file of CA certificates"):
        load_config(path)


def test_nameservers() -> None:
    cfg = parse_config("dns: {nameservers: ['127.0.0.1', '127.0.0.53:5353', '::1', '[::1]:53']}\n")
    assert len(cfg.dns.nameservers) == 4
    assert problems("dns: {nameservers: ['[::1]:99999']}\n") == [
        "s.yaml:1: dns.nameservers: '[::1]:99999' has a bad port"
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


def test_commented_examples_in_the_shipped_config_are_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ca_file: Path
) -> None:
    """Uncommented, the example servers in servers.yaml load as written."""
    text = (ROOT / "servers.yaml").read_text()
    uncommented = re.sub(r"(?m)^  # (- |  )", r"  \1", text)

    def servers(t: str) -> int:
        return len(re.findall(r"(?m)^  - name:", t))

    assert servers(uncommented) == servers(text) + 2
    monkeypatch.setenv("SCHOOL_JWT_SECRET", "x" * 32)
    (tmp_path / "jaas-private-key.pem").write_text(rsa_pem()[0])
    uncommented = uncommented.replace("/etc/ssl/certs/school-ca.pem", str(ca_file))
    path = tmp_path / "servers.yaml"
    path.write_text(uncommented)
    cfg = load_config(path)
    kinds = {t.name: (t.kind, t.token_key is not None) for t in cfg.targets()}
    assert kinds["school-1"] == ("self_hosted", True)
    assert kinds["jaas"] == ("jaas", True)
