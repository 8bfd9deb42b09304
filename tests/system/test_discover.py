"""discover as a user runs it (a child process): a list, from a file or a
URL, printed as a fragment the loader takes, hostile text kept as data."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web

from monitor.config import parse_config
from tests.support.cli import run_cli
from tests.support.paths import HANDBOOK, RANDOM_REDIRECT
from tests.support.sites import StartSite


async def test_discover_prints_a_fragment_the_loader_takes(tmp_path: Path) -> None:
    result = await run_cli("discover", str(HANDBOOK))
    assert result.code == 0, result.err
    assert result.out.startswith("# jitsi-monitor discover: 23 server(s)")
    cfg = parse_config(result.out, "discovered.yaml")  # the real loader
    servers = {s.name: s for s in cfg.servers}
    assert len(servers) == 23
    assert all(s.kind == "public" for s in cfg.servers)
    ffmuc = servers["meet-ffmuc-net"]
    assert ffmuc.url == "https://meet.ffmuc.net/"
    assert ffmuc.labels == {
        "cloud": "true",
        "country": "Germany",
        "hoster": "CLOUDFLARENET",
        "non_google_stun": "true",
        "region": "Europe",
    }
    assert "meet-lrz-de" not in servers
    # Filters; and limited-access servers, when kept, say so.
    result = await run_cli(
        "discover", str(HANDBOOK), "--country", "Germany", "--label", "non_google_stun=true"
    )
    assert result.code == 0, result.err
    cfg = parse_config(result.out, "discovered.yaml")
    assert {s.labels["country"] for s in cfg.servers} == {"Germany"}
    assert all(s.labels["non_google_stun"] == "true" for s in cfg.servers)
    result = await run_cli("discover", str(HANDBOOK), "--country", "germany", "--include-limited")
    assert result.code == 0, result.err
    servers = {s.name: s for s in parse_config(result.out, "discovered.yaml").servers}
    assert servers["meet-lrz-de"].labels["access"] == "limited"


async def test_discover_from_a_url(start_site: StartSite) -> None:
    seen: list[str] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("User-Agent", ""))
        return web.Response(text=RANDOM_REDIRECT.read_text())

    async def huge(_: web.Request) -> web.Response:
        return web.Response(text="https://a.example.org/\n" * 300_000)

    app = web.Application()
    app.router.add_get("/jitsi_servers.lst", page)
    app.router.add_get("/huge.lst", huge)
    site = await start_site(app)
    result = await run_cli(
        "discover", f"{site.url}jitsi_servers.lst", "--contact", "https://lms.example.org/ops"
    )
    assert result.code == 0, result.err
    assert len(parse_config(result.out).servers) == 11
    assert seen
    assert "jitsi-monitor/" in seen[0]
    assert "(+https://lms.example.org/ops)" in seen[0]
    result = await run_cli("discover", f"{site.url}huge.lst")
    assert result.code == 2
    assert "body_too_large" in result.err


async def test_hostile_list_text_stays_data(tmp_path: Path) -> None:
    """Cells of a list are untrusted: YAML, control characters and long text stay data."""
    evil = (
        "## Europe\n\n### Nowhere\n\n| URL | hoster |\n|---|---|\n"
        "| a.example.org | x: y # z\u0000\u202e 'q' \"r\" {s} [t] &u *v !w " + "long " * 100 + "|\n"
        "| b.example.org\tpwned: true | ok |\n"
        "| <script>.example.org | bad |\n"
    )
    path = tmp_path / "evil.md"
    path.write_text(evil)
    result = await run_cli("discover", str(path))
    assert result.code == 0, result.err
    cfg = parse_config(result.out)
    assert [s.name for s in cfg.servers] == ["a-example-org", "b-example-org"]
    hoster = cfg.servers[0].labels["hoster"]
    assert hoster.startswith("x: y # z 'q' \"r\" {s} [t] &u *v !w")
    assert len(hoster) <= 128
    assert "\u0000" not in hoster
    assert "\u202e" not in hoster
    data = yaml.safe_load(result.out)
    assert set(data) == {"servers"}
