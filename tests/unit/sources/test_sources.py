"""server_sources piece by piece: the config keys, files, HTTP SD answers, the merge,
and pools whose members are chosen by label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.config import ConfigError, parse_config, parse_shard
from monitor.config.server_sources import ServerSourceConfig
from monitor.sources.fetch import SourceError
from monitor.sources.files import parse_servers_file
from monitor.sources.http_sd import parse_sd
from monitor.sources.merge import Given, merge


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "s.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ("  - {name: a}\n", "either files or http_sd"),
        ("  - {name: a, files: 'd/*.yaml', http_sd: 'https://x/'}\n", "either files or http_sd"),
        ("  - {name: a, http_sd: 'ftp://x/'}\n", "http_sd is a URL"),
        ("  - {name: a, http_sd: 'https://u:p@x/'}\n", "user name or password"),
        ("  - {name: 'a b', files: x}\n", "a source name"),
        ("  - {name: a, files: x}\n  - {name: a, files: y}\n", "used twice"),
        ("  - {name: a, files: x, refresh: 0s}\n", "refresh must be"),
        ("  - {name: a, files: x, labels: {kind: x}}\n", "used by the monitor"),
        ("  - {name: a, files: x, fles: y}\n", "did you mean 'files'"),
    ],
)
def test_bad_sources(sources: str, message: str) -> None:
    found = problems("server_sources:\n" + sources)
    assert any(message in p for p in found), found


def test_source_defaults() -> None:
    cfg = parse_config(
        "server_sources:\n  - {name: d, files: 'servers.d/*.yaml'}\n"
        "  - {name: sd, http_sd: 'https://sd.example.org/targets'}\n"
    )
    files, sd = cfg.server_sources
    assert (files.type, files.every) == ("files", 5.0)
    assert (sd.type, sd.every, sd.kind) == ("http_sd", 60.0, "self_hosted")


SERVERS = (
    "servers:\n"
    "  - {name: a, url: 'https://a.example/', labels: {team: school-1}}\n"
    "  - {name: b, url: 'https://b.example/', labels: {team: school-2}}\n"
    "  - {name: c, url: 'https://c.example/', labels: {team: school-1, tier: spare}}\n"
)


def test_pool_members_by_label_and_name() -> None:
    cfg = parse_config(
        SERVERS + "pools:\n"
        "  - {name: s1, members: {label: {team: school-1}}}\n"
        "  - {name: mixed, servers: [b], members: {label: {team: school-1, tier: spare}}}\n"
    )
    _, pools = cfg.fleet()
    assert [p.servers for p in pools] == [("a", "c"), ("b", "c")]
    # Sharding keeps a pool whole, label members included.
    shards = [cfg.fleet(parse_shard(f"{i}/3"))[0] for i in (1, 2, 3)]
    holding = [{t.name for t in targets} for targets in shards]
    assert sum(1 for names in holding if {"a", "b", "c"} <= names) == 1


def test_pool_needs_members_and_may_name_servers_of_sources() -> None:
    assert any("names its servers" in p for p in problems(SERVERS + "pools:\n  - {name: p}\n"))
    assert any(
        "no server named 'z'" in p
        for p in problems(SERVERS + "pools:\n  - {name: p, servers: [z]}\n")
    )
    cfg = parse_config(
        SERVERS
        + "server_sources:\n  - {name: d, files: 'x/*.yaml'}\n"
        + "pools:\n  - {name: p, servers: [z, a]}\n"
    )
    _, (pool,) = cfg.fleet()
    assert pool.servers == ("a",), "z may come from a source; until then it is no member"


def test_servers_file_as_a_list_with_lines(tmp_path: Path) -> None:
    base = parse_config("defaults: {interval: 2m}\nservers: []\n")
    (tmp_path / "ca.pem").write_text("x")
    path = tmp_path / "a.yaml"
    path.write_text(
        "---\n# two servers\n"
        "- name: one\n  url: https://one.example/\n  timeout: 90s\n"
        "- {name: two, url: 'https://two.example/', tls: {verify: true}}\n"
    )
    servers, keys = parse_servers_file(path, base, 1 << 20)
    assert [s.name for s in servers] == ["one", "two"]
    assert keys == {}
    path.write_text("# nothing yet\n")
    assert parse_servers_file(path, base, 1 << 20) == ((), {})
    path.write_text("- name: one\n  url: https://one.example/\n- name: bad\n  url: ftp://x/\n")
    with pytest.raises(SourceError, match=r"a\.yaml:4: servers\[1\]\.url: url must start"):
        parse_servers_file(path, base, 1 << 20)
    path.write_text("servers:\n  - {name: one, url: 'https://one.example/'}\npools: []\n")
    with pytest.raises(SourceError, match="servers only"):
        parse_servers_file(path, base, 1 << 20)
    path.write_text("- {name: one, url: 'https://one.example/'}\n" * 100)
    with pytest.raises(SourceError, match="larger than"):
        parse_servers_file(path, base, 1024)


def test_servers_file_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    (tmp_path / "d").mkdir()
    ca.cert_pem.write_to_path(str(tmp_path / "d" / "ca.pem"))
    path = tmp_path / "d" / "a.yaml"
    path.write_text("- {name: one, url: 'https://one.example/', tls: {ca_file: ca.pem}}\n")
    servers, _ = parse_servers_file(path, parse_config("servers: []\n"), 1 << 20)
    assert servers[0].tls is not None
    assert servers[0].tls.ca_file == (tmp_path / "d" / "ca.pem").resolve()


SD = ServerSourceConfig(name="sd", http_sd="https://sd.example/", labels={"fleet": "gcp"})


def test_http_sd_answer() -> None:
    body = json.dumps(
        [
            {
                "targets": ["meet1.example.org", "https://meet2.example.org/acme/", "x y"],
                "labels": {"team": "school-1", "__meta_gce_zone": "eu", "kind": "public"},
            },
            {"targets": ["127.0.0.7:8080"], "labels": {"__scheme__": "http", "bad-label": "x"}},
            {"targets": ["meet1.example.org"]},
        ]
    ).encode()
    given, left_out = parse_sd(body, SD)
    servers = {s.name: s for s in given.servers}
    assert set(servers) == {"meet1-example-org", "meet2-example-org-acme"}
    meet1 = servers["meet1-example-org"]
    assert meet1.kind == "public"
    assert meet1.labels == {"team": "school-1", "fleet": "gcp"}
    assert servers["meet2-example-org-acme"].url == "https://meet2.example.org/acme/"
    assert any(p.startswith("x y:") for p in left_out)
    assert any("bad-label" in p for p in left_out), "a label name the monitor refuses"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not JSON"),
        (b'{"targets": []}', "not a list"),
        (b'[{"labels": {}}]', "not an object with a list of targets"),
        (b'[{"targets": [], "labels": {"a": 1}}]', "labels are not an object of strings"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (
            json.dumps([{"targets": [f"h{i}.example.org" for i in range(11)]}]).encode(),
            "max_servers",
        ),
    ],
)
def test_http_sd_answers_that_are_errors(body: bytes, message: str) -> None:
    spec = ServerSourceConfig(name="sd", http_sd="https://sd.example/", max_servers=10)
    with pytest.raises(SourceError, match=message):
        parse_sd(body, spec)


def test_merge_keeps_names_and_urls_unique() -> None:
    base = parse_config(SERVERS)
    other = parse_config(
        "servers:\n  - {name: a, url: 'https://z.example/'}\n"
        "  - {name: d, url: 'https://a.example/'}\n  - {name: e, url: 'https://e.example/'}\n"
    ).servers
    merged, left_out = merge(base, [Given("one", tuple(other)), Given("two", (other[2],))])
    assert [s.name for s in merged.servers] == ["a", "b", "c", "e"]
    assert left_out["one"] == [
        "a: the name is taken by the config",
        "d: https://a.example/ is probed already, as a",
    ]
    assert left_out["two"] == ["e: the name is taken by source one"]
    assert [s.name for s in base.servers] == ["a", "b", "c"], "the config itself is unchanged"
