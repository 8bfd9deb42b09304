"""Moodle as a source: rows become servers of a pool with mod_jitsi token keys; a failed
read keeps the last good rows; a changed secret is applied (monitor/sources/moodle.py)."""

from __future__ import annotations

import time

from monitor.config import MonitorConfig
from monitor.moodle.database import MoodleReadError, SiteRead
from monitor.moodle.servers import RawRow, servers_from_rows
from monitor.sources.merge import merge
from monitor.sources.moodle import MoodleSite, moodle_given, with_moodle_pool
from monitor.sources.watch import Sources
from tests.support.sites import make_config

SECRET = "row-Secret-0042"
CONFIG = """
defaults: {interval: 30s}
pools:
  - name: moodle              # the site pool's settings; its members come from Moodle
    failover: {hold_down: 5m}
moodle:
  database: postgresql://mon@127.0.0.1/moodle
  url: "http://{domain}/"
  switch: never
"""


def _site(secret: str = SECRET, active: int | None = 2) -> SiteRead:
    rows = [
        RawRow(id=1, name="Aula Norte", type=0, domain="127.0.0.1:8001"),
        RawRow(
            id=2, name="Con token", type=1, domain="127.0.0.1:8002", appid="moodle", secret=secret
        ),
        RawRow(
            id=3, name="GCP", type=3, domain="127.0.0.1:8003", provisioningstatus="provisioning"
        ),
    ]
    servers, problems = servers_from_rows(rows, url_template="http://{domain}/", active_id=active)
    return SiteRead(servers, problems, active, time.time())


class _Reader:
    """Stands in for SiteReader: gives reads or failures in turn."""

    def __init__(self, *answers: SiteRead | MoodleReadError) -> None:
        self.answers = list(answers)
        self.last_good: SiteRead | None = None
        self.last_error: MoodleReadError | None = None
        self.last_attempt: float | None = None

    async def read(self) -> SiteRead | None:
        self.last_attempt = time.time()
        answer = self.answers.pop(0)
        if isinstance(answer, MoodleReadError):
            self.last_error = answer
        else:
            self.last_error, self.last_good = None, answer
        return self.last_good


def _config() -> MonitorConfig:
    return make_config(CONFIG)


def test_rows_become_servers_with_labels_kinds_and_mod_jitsi_keys() -> None:
    given = moodle_given(_site())
    names = [s.name for s in given.servers]
    assert names == ["aula-norte-1", "con-token-2"]  # the GCP row is not provisioned
    assert [s.labels for s in given.servers] == [
        {"moodle_server_id": "1"},
        {"moodle_server_id": "2"},
    ]
    assert {s.kind for s in given.servers} == {"self_hosted"}
    key = given.token_keys["con-token-2"]
    assert (key.style, key.algorithm, key.issuer, key.subject) == (
        "mod_jitsi",
        "HS256",
        "moodle",
        "127.0.0.1:8002",
    )
    assert key.key_id == "jitsi/custom_key_name"
    assert SECRET not in repr(given)


def test_the_pool_takes_its_settings_from_pools_and_defaults_apply() -> None:
    cfg = _config()
    assert cfg.fleet()[0] == []  # resolved once already, as a reload does
    given = moodle_given(_site())
    merged, _ = merge(cfg, [given])
    merged = with_moodle_pool(merged, "moodle", [s.name for s in given.servers])
    targets, pools = merged.fleet()
    assert [t.interval for t in targets] == [30.0, 30.0]
    assert targets[1].token_key is not None
    (pool,) = pools
    assert pool.servers == ("aula-norte-1", "con-token-2")
    assert pool.hold_down == 300.0


async def test_a_failed_read_keeps_the_last_good_rows_and_says_why() -> None:
    cfg = _config()
    assert cfg.moodle is not None
    site = MoodleSite(cfg.moodle, cfg)
    site.reader = _Reader(_site(), MoodleReadError("timeout", "no answer in 10 s"))  # type: ignore[assignment]
    await site.read()
    assert site.status.ok is True
    assert site.status.active_server == "con-token-2"
    assert site.status.not_provisioned == [{"id": 3, "server": "gcp-3", "status": "provisioning"}]
    await site.read()
    assert site.status.ok is False
    assert (site.status.error_reason, site.status.error) == ("timeout", "no answer in 10 s")
    assert site.members() == ["aula-norte-1", "con-token-2"]
    assert site.status.read_errors_total == 1
    shown = site.status.as_dict()
    assert shown["last_read"]["ok"] is False
    assert shown["active_id"] == 2


async def test_a_changed_secret_is_applied_though_no_server_changed() -> None:
    cfg = _config()
    applied: list[MonitorConfig] = []
    sources = Sources(cfg, user_agent="t", apply=applied.append)
    assert sources.moodle is not None
    sources.moodle.reader = _Reader(_site(), _site(secret="new-Secret-0043"))  # type: ignore[assignment]
    await sources.first_reads()
    sources.configure(cfg)
    await sources.moodle.read()
    sources._changed()
    (merged,) = applied
    assert merged._token_keys["con-token-2"].key == "new-Secret-0043"


async def test_a_changed_block_keeps_the_servers_until_it_is_read() -> None:
    cfg = _config()
    sources = Sources(cfg, user_agent="t", apply=lambda _: None)
    assert sources.moodle is not None
    sources.moodle.reader = _Reader(_site())  # type: ignore[assignment]
    await sources.first_reads()
    changed = make_config(CONFIG.replace("switch: never", "switch: never\n  interval: 2m"))
    merged = sources.configure(changed)
    assert sources.moodle.spec.interval == 120.0
    assert [s.name for s in merged.servers] == ["aula-norte-1", "con-token-2"]
    assert sources.moodle.status.active_server == "con-token-2"
