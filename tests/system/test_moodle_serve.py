"""Moodle's servers watched, its server followed and switched (issue 24, "What it must show").

Real PostgreSQL and MariaDB (tests/support/databases.py) hold mod_jitsi's tables in the
shape of SergioComeron/moodle-mod_jitsi at 3e040231d89c8b732d33a5d7140d0099eba29d49
(``db/install.xml``); the rows' domains are lab servers on loopback, one of them with
token authentication; the switch runs the stand-in cfg.php under the real ``php``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

from monitor.lab import LabOptions, LabServer
from monitor.lab.tokens import TokenPolicy
from tests.support.alerting import rule_metrics, sample_names
from tests.support.cli import run_cli
from tests.support.dashboards import dashboard_metrics
from tests.support.databases import MONITOR_PASSWORD, Database
from tests.support.moodle_site import make_site
from tests.support.processes import Served, start_serve

SECRET = "moodle-Shared-Secret-4410-long-enough"
PHP = Path(shutil.which("php") or "/usr/bin/php")


@dataclass(frozen=True)
class Recording(TokenPolicy):
    """The lab's token check, keeping every token it was shown."""

    seen: ClassVar[list[str]] = []

    def check(self, token: str | None) -> dict[str, Any]:
        if token:
            Recording.seen.append(token)
        return super().check(token)


@dataclass
class Site:
    db: Database
    labs: list[LabServer] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


@pytest.fixture
async def site(database: Database, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Site]:
    database.create_tables()
    monkeypatch.setenv("JITSI_MONITOR_MOODLE_PASSWORD", MONITOR_PASSWORD)
    Recording.seen.clear()
    labs = [
        LabServer(LabOptions()),
        LabServer(LabOptions(latency=0.02)),
        LabServer(LabOptions(tokens=Recording("moodle", SECRET), moderation="token_moderation")),
    ]
    for lab in labs:
        await lab.start()
    found = Site(database, labs)
    # Two rows without token, one with JWT (type 1: appid and secret), as an admin types them.
    for name, lab, extra in (
        ("Aula Norte", labs[0], {"type": 0}),
        ("Aula Sur", labs[1], {"type": 0}),
        ("Jitsi con token", labs[2], {"type": 1, "appid": "moodle", "secret": SECRET}),
    ):
        domain = lab.url.removeprefix("http://").rstrip("/")
        found.ids.append(database.add_server(name=name, domain=domain, **extra))
    database.set_config("mod_jitsi", "server", str(found.ids[0]))
    yield found
    for lab in labs:
        await lab.stop()


def _config(tmp_path: Path, db: Database, extra: str = "") -> Path:
    path = tmp_path / "servers.yaml"
    path.write_text(
        "defaults: {timeout: 5s, interval: 2s}\n"
        "state_file: ''\n"
        "moodle:\n"
        f"  database: {db.dsn}\n"
        "  url: 'http://{domain}/'\n"
        f"{extra}"
    )
    return path


def _claims(token: str, part: int) -> dict[str, Any]:
    text = token.split(".")[part]
    return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


async def test_check_lists_the_three_rows_and_the_jwt_one_passes(
    site: Site, tmp_path: Path
) -> None:
    config = _config(tmp_path, site.db, "  switch: never\n")
    result = await run_cli("check", "--json", str(config), timeout=120)
    out = json.loads(result.out)
    servers = {s["labels"]["moodle_server_id"]: s for s in out["servers"]}
    assert sorted(servers) == sorted(str(i) for i in site.ids)
    assert {s["server"] for s in out["servers"]} == {
        f"aula-norte-{site.ids[0]}",
        f"aula-sur-{site.ids[1]}",
        f"jitsi-con-token-{site.ids[2]}",
    }
    assert {s["kind"] for s in out["servers"]} == {"self_hosted"}
    jwt_one = servers[str(site.ids[2])]
    checks = {c["check"]: c for c in jwt_one["checks"]}
    assert checks["jwt_valid"]["success"], checks["jwt_valid"]
    # The token the lab saw is mod_jitsi's: its header, its claims in its order, its sub.
    assert Recording.seen
    token = Recording.seen[0]
    assert _claims(token, 0) == {"kid": "jitsi/custom_key_name", "typ": "JWT", "alg": "HS256"}
    claims = _claims(token, 1)
    assert list(claims) == ["context", "aud", "iss", "sub", "room", "exp", "moderator"]
    assert claims["sub"] == site.labs[2].url.removeprefix("http://").rstrip("/")
    assert claims["iss"] == "moodle"
    assert out["moodle"]["active_id"] == site.ids[0]
    assert out["moodle"]["active_server"] == f"aula-norte-{site.ids[0]}"
    assert out["moodle"]["last_read"]["ok"] is True
    # The pool of the site's servers starts from what Moodle uses.
    pool = next(p for p in out["pools"] if p["pool"] == "moodle")
    assert pool["chosen"] == f"aula-norte-{site.ids[0]}"
    table = await run_cli("check", str(config), timeout=120)
    assert f"mod_jitsi/server = {site.ids[0]} (aula-norte-{site.ids[0]})" in table.out
    for text in (result.out, result.err, table.out, table.err):
        assert SECRET not in text
        assert MONITOR_PASSWORD not in text


async def _healthz(served: Served) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{served.base}/healthz") as resp,
    ):
        return dict(await resp.json())


async def _text(served: Served, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(served.base + path) as resp:
        assert resp.status == 200
        return await resp.text()


async def _until(condition: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, what
        await asyncio.sleep(0.25)


async def test_serve_switches_when_the_active_server_goes_down_and_follows_a_hand_change(
    site: Site, tmp_path: Path, serve: list[Served]
) -> None:
    moodle_root = make_site(tmp_path / "moodle", site.db)
    config = _config(
        tmp_path,
        site.db,
        f"  interval: 5s\n  php: {PHP}\n  dir: {moodle_root}\n",
    )
    served = await start_serve(config, serve)
    first, second, _ = site.ids
    health = await _healthz(served)
    assert health["moodle"]["active_id"] == first
    assert health["moodle"]["last_read"]["ok"] is True
    # The status pages and the metrics say which server Moodle uses now.
    uses = f"aula-norte-{first} (mod_jitsi/server = {first})"
    assert f"Moodle uses now: <strong>{uses}</strong>" in await _text(served, "/pools/moodle")
    assert f"Moodle uses: {uses}" in await _text(served, "/")
    metrics = await _text(served, "/metrics")
    assert (
        f'jitsi_moodle_active_server{{location="default",moodle_server_id="{first}",'
        f'pool="moodle",server="aula-norte-{first}"}} 1'
    ) in metrics
    assert 'jitsi_moodle_read_successful{location="default",pool="moodle"} 1' in metrics
    assert SECRET not in metrics
    # The active server goes down: within 60 s Moodle uses a healthy one, set through cfg.php.
    await site.labs[0].set_fault("refuse")
    await _until(
        lambda: site.db.get_config("mod_jitsi", "server") not in (None, str(first)),
        60,
        "mod_jitsi/server was not switched within 60 s",
    )
    now = int(site.db.get_config("mod_jitsi", "server") or 0)
    assert now in site.ids[1:]
    # cfg.php has written it; the switch counts once Moodle and the database read it back.
    loop = asyncio.get_running_loop()
    end = loop.time() + 30
    while (health := await _healthz(served))["moodle"]["last_switch"] is None:
        assert loop.time() < end, "the switch was not counted"
        await asyncio.sleep(0.25)
    assert health["moodle"]["last_switch"]["result"] == "done"
    assert health["moodle"]["switches"]["done"] == 1
    # Every Moodle metric the shipped alert rules use is exported now.
    exported = sample_names(await _text(served, "/metrics"))
    missing = rule_metrics("jitsi_moodle_") - exported
    assert not missing, f"the alert rules use metrics serve does not export: {sorted(missing)}"
    missing = dashboard_metrics("jitsi_moodle_") - exported
    assert not missing, f"the dashboards use metrics serve does not export: {sorted(missing)}"
    # Someone sets the other healthy server by hand: the monitor follows, sends nothing back.
    other = second if now != second else site.ids[2]
    site.db.set_config("mod_jitsi", "server", str(other))
    end = loop.time() + 30
    while True:
        health = await _healthz(served)
        if health["moodle"]["active_id"] == other:
            break
        assert loop.time() < end, "the hand change was not read"
        await asyncio.sleep(0.5)
    assert health["moodle"]["outside_changes_total"] == 1
    # Two more reads later, still the hand-set server, and no other switch ran.
    await asyncio.sleep(11)
    health = await _healthz(served)
    assert site.db.get_config("mod_jitsi", "server") == str(other)
    assert health["moodle"]["switches"].get("done") == 1
    assert health["moodle"]["active_server"] is not None
    # A reload keeps the site's servers (they come from Moodle, not from the file).
    served.proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(2)
    health = await _healthz(served)
    assert health["config_reload_ok"] is True
    assert health["servers"] == 3
    assert health["moodle"]["active_id"] == other
    await _no_secret_in_the_log(served)


async def _no_secret_in_the_log(served: Served) -> None:
    served.proc.terminate()
    assert served.proc.stderr is not None
    log = (await asyncio.wait_for(served.proc.stderr.read(), 30)).decode()
    await served.proc.wait()
    assert "moodle:" in log
    assert SECRET not in log
    assert MONITOR_PASSWORD not in log


async def test_a_switch_moodle_refuses_is_forced_once_and_not_fought(
    site: Site, tmp_path: Path, serve: list[Served]
) -> None:
    first = site.ids[0]
    # config.php hard-sets the server: Moodle's cfg.php exits 4.
    moodle_root = make_site(tmp_path / "moodle", site.db, hard_set=str(first))
    config = _config(
        tmp_path,
        site.db,
        f"  interval: 5s\n  php: {PHP}\n  dir: {moodle_root}\n",
    )
    served = await start_serve(config, serve)
    await site.labs[0].set_fault("refuse")
    health: dict[str, Any] = {}

    async def forced() -> bool:
        nonlocal health
        health = await _healthz(served)
        return health["moodle"]["switches"].get("forced", 0) >= 1

    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while not await forced():
        assert loop.time() < end, "no forced switch within 60 s"
        await asyncio.sleep(0.5)
    last = health["moodle"]["last_switch"]
    assert last["result"] == "forced"
    assert "hard-set in config.php" in last["detail"]
    assert site.db.get_config("mod_jitsi", "server") == str(first)
    # Two reads later: not tried again, and Moodle's kept row is no change from outside.
    await asyncio.sleep(11)
    health = await _healthz(served)
    assert health["moodle"]["switches"]["forced"] == 1
    assert health["moodle"]["outside_changes_total"] == 0
    assert health["moodle"]["active_id"] == first
    metrics = await _text(served, "/metrics")
    assert 'result="forced"} 1' in metrics
    await _no_secret_in_the_log(served)
