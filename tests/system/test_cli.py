"""The commands as a user runs them: real processes against loopback servers."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import aiohttp

from monitor.lab import LabOptions, LabServer, servers_yaml
from tests.support.cli import promtool_check, run_cli, scrape, wait_for_metric, write_config
from tests.support.paths import ROOT
from tests.support.processes import Served, read_until, start_serve
from tests.support.sites import StartSite, eventually, jitsi_app


def refused_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


# -- validate -------------------------------------------------------------------


async def test_validate_accepts_the_shipped_config() -> None:
    result = await run_cli("validate", str(ROOT / "servers.yaml"))
    assert result.code == 0, result.err
    assert "valid" in result.out
    assert "meet-jit-si" in result.out


async def test_validate_explains_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("servers:\n  - name: a\n    url: gopher://x\n    colour: blue\n")
    result = await run_cli("validate", str(path))
    assert result.code == 2
    assert f"{path}:3: servers[0].url: url must start with https:// or http://" in result.err
    assert f"{path}:4: servers[0].colour: unknown key" in result.err
    assert "Traceback" not in result.err


async def test_missing_config_is_a_config_error(tmp_path: Path) -> None:
    result = await run_cli("check", str(tmp_path / "nope.yaml"))
    assert result.code == 2
    assert "no such file" in result.err


# -- check ----------------------------------------------------------------------


async def test_check_all_healthy(start_site: StartSite, tmp_path: Path) -> None:
    site = await start_site(jitsi_app(disable_iframe=True))
    path = write_config(tmp_path, {"school-1": site.url})
    result = await run_cli("check", str(path))
    assert result.code == 0, result.out + result.err
    row = next(line for line in result.out.splitlines() if "school-1" in line)
    assert "up" in row
    assert "ends after 300 s" in row
    assert re.search(r"\d+ ms", row), "phase times are shown"
    for heading in ("DNS", "connect", "TLS", "first byte", "cert days", "embed limit"):
        assert heading in result.out


async def test_check_reports_the_first_failing_check(start_site: StartSite, tmp_path: Path) -> None:
    site = await start_site(jitsi_app())
    bad = refused_url()
    path = write_config(tmp_path, {"good": site.url, "gone": bad})
    result = await run_cli("check", str(path))
    assert result.code == 1
    row = next(line for line in result.out.splitlines() if "gone" in line)
    assert "down" in row
    assert "web: connect_refused" in row


async def test_check_json(start_site: StartSite, tmp_path: Path) -> None:
    site = await start_site(jitsi_app())
    path = write_config(tmp_path, {"good": site.url, "gone": refused_url()}, "location: lab")
    result = await run_cli("check", "--json", str(path))
    assert result.code == 1
    data = json.loads(result.out)
    assert data["location"] == "lab"
    good, gone = data["servers"]
    assert good["server"] == "good"
    assert good["verdict"] == "up"
    assert good["embed_limit_seconds"] == 0
    assert set(good["http"]["phases"]) == {"resolve", "connect", "processing", "transfer"}
    assert [c["check"] for c in good["checks"]] == ["web", "configjs", "external_api", "embed"]
    assert good["config"]["domain"] == "meet.test"
    assert gone["verdict"] == "down"
    assert gone["first_failure"]["reason"] == "connect_refused"


async def test_check_one_server(start_site: StartSite, tmp_path: Path) -> None:
    site = await start_site(jitsi_app())
    path = write_config(tmp_path, {"good": site.url, "gone": refused_url()})
    result = await run_cli("check", "--json", "--server", "good", str(path))
    assert result.code == 0
    assert [s["server"] for s in json.loads(result.out)["servers"]] == ["good"]
    result = await run_cli("check", "--server", "nobody", str(path))
    assert result.code == 2
    assert "no server named nobody" in result.err


async def test_check_on_unreachable_public_servers(tmp_path: Path, nxdomain_dns: str) -> None:
    """The shipped config on a machine without internet: a clean report, no crash."""
    text = (ROOT / "servers.yaml").read_text()
    path = tmp_path / "servers.yaml"
    path.write_text(text + f"\ndns: {{nameservers: ['{nxdomain_dns}']}}\n")
    result = await run_cli("check", str(path))
    assert result.code == 1
    assert "Traceback" not in result.err
    rows = [line for line in result.out.splitlines() if line.startswith("│")]
    assert sum("web: dns_error" in row for row in rows) == 3
    assert "pool public: no eligible server" in result.out


# -- serve ----------------------------------------------------------------------


async def test_serve_exports_metrics_and_reloads(
    start_site: StartSite, tmp_path: Path, serve: list[Served]
) -> None:
    site = await start_site(jitsi_app(disable_iframe=True))
    gone = refused_url()
    config = write_config(
        tmp_path, {"school-1": site.url, "gone": gone}, "location: lab\ndefaults: {interval: 2s}"
    )
    served = await start_serve(config, serve)
    text = await wait_for_metric(served.base, 'jitsi_server_up{location="lab",server="gone"}')
    text = await wait_for_metric(served.base, 'jitsi_server_up{location="lab",server="school-1"}')
    assert 'jitsi_server_up{location="lab",server="school-1"} 1.0' in text
    assert 'jitsi_server_up{location="lab",server="gone"} 0.0' in text
    assert (
        'jitsi_check_reason_info{check="web",location="lab",reason="connect_refused",server="gone"}'
        in text
    )
    assert 'jitsi_embed_limit_seconds{location="lab",server="school-1"} 300.0' in text
    for phase in ("resolve", "connect", "processing", "transfer"):
        assert (
            f'jitsi_http_duration_seconds{{location="lab",phase="{phase}",server="school-1"}}'
            in text
        )
    assert 'jitsi_monitor_probe_errors_total{check="web",location="lab"} 0.0' in text
    assert 'jitsi_monitor_config_last_reload_successful{location="lab"} 1.0' in text
    assert "jitsi_last_probe_timestamp_seconds{" in text
    assert "jitsi_monitor_schedule_lag_seconds{" in text
    # the history behind the status pages (on by default, beside the config)
    assert 'jitsi_monitor_history_up{location="lab"} 1.0' in text
    assert 'jitsi_monitor_history_errors_total{location="lab"} 0.0' in text

    om, content_type = await scrape(served.base, "application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert om.rstrip().endswith("# EOF")

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.base}/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        async with session.get(f"{served.base}/") as resp:
            page = await resp.text()
            assert "school-1" in page

    # A broken config on reload keeps the running one and says so.
    good_text = config.read_text()
    config.write_text("servers: [\n")
    served.proc.send_signal(signal.SIGHUP)
    text = await wait_for_metric(
        served.base, 'jitsi_monitor_config_last_reload_successful{location="lab"} 0.0'
    )
    assert 'server="school-1"' in text

    # Removing a server from the config removes every series it had; a
    # setting read only at start-up is named in the log when it changes.
    config.write_text(
        good_text.replace(
            f"  - name: gone\n    url: {gone}\n    timeout: 2s\n"
            "    signalling: {enabled: false}\n",
            "",
        )
        + "probe:\n  concurrency: 3\n"
    )
    served.proc.send_signal(signal.SIGHUP)
    text = await wait_for_metric(
        served.base, 'jitsi_monitor_config_last_reload_successful{location="lab"} 1.0'
    )
    assert 'server="gone"' not in text
    assert 'server="school-1"' in text

    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.proc.wait(), 10) == 0
    assert served.proc.stderr is not None
    log = (await served.proc.stderr.read()).decode()
    warnings = [line for line in log.splitlines() if "only on restart" in line]
    assert len(warnings) == 1, log
    assert "kept the running value of probe.concurrency (" in warnings[0]
    assert "location" not in warnings[0]


async def test_serve_says_when_its_history_cannot_be_kept(
    start_site: StartSite, tmp_path: Path, serve: list[Served]
) -> None:
    site = await start_site(jitsi_app())
    (tmp_path / "history-dir").mkdir()
    config = write_config(
        tmp_path,
        {"school-1": site.url},
        "location: lab\ndefaults: {interval: 2s}\nhistory: {file: history-dir}",
    )
    served = await start_serve(config, serve)
    text = await wait_for_metric(served.base, 'jitsi_server_up{location="lab",server="school-1"}')
    assert 'jitsi_monitor_history_up{location="lab"} 0.0' in text
    async with aiohttp.ClientSession() as session, session.get(f"{served.base}/") as resp:
        assert resp.status == 200
        assert "school-1" in await resp.text()
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.proc.wait(), 10) == 0


async def test_serve_output_passes_promtool(
    start_site: StartSite, tmp_path: Path, serve: list[Served]
) -> None:
    site = await start_site(jitsi_app())
    config = write_config(tmp_path, {"a": site.url, "b": refused_url()}, "defaults: {interval: 2s}")
    served = await start_serve(config, serve)
    text = await wait_for_metric(served.base, 'server="b"} 0.0')
    await wait_for_metric(served.base, 'jitsi_server_up{location="default",server="a"}')
    text, _ = await scrape(served.base)
    await promtool_check(text)
    served.proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(served.proc.wait(), 10) == 0


async def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text("listen: {port: -1}\n")
    result = await run_cli("serve", str(path))
    assert result.code == 2
    assert "listen.port" in result.err


async def test_serve_exports_signalling_metrics(tmp_path: Path, serve: list[Served]) -> None:
    lab = LabServer(LabOptions(latency=0.02))
    await lab.start()
    try:
        config = tmp_path / "lab.yaml"
        config.write_text(servers_yaml([lab], interval="2s", timeout="2s"))
        served = await start_serve(config, serve)
        text = await wait_for_metric(served.base, 'jitsi_server_up{location="lab",server="lab-1"}')
        assert 'jitsi_server_up{location="lab",server="lab-1"} 1.0' in text
        for check in ("signalling", "focus", "muc"):
            assert (
                f'jitsi_check_success{{check="{check}",location="lab",server="lab-1"}} 1.0' in text
            )
        for phase in ("upgrade", "open", "auth", "bind", "ping", "focus", "join", "leave"):
            assert (
                f'jitsi_xmpp_duration_seconds{{location="lab",phase="{phase}",server="lab-1"}}'
                in text
            )
        rtt = re.search(
            r'jitsi_rtt_seconds\{location="lab",method="xmpp_ping",server="lab-1"\} (\S+)', text
        )
        assert rtt is not None
        assert float(rtt.group(1)) >= 0.02, "the lab's 20 ms latency shows in the ping"
        await promtool_check(text)
        served.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.proc.wait(), 10) == 0
        await eventually(lambda: lab.sessions == 0)
        assert lab.rooms == {}, "stopping the monitor leaves no one behind"
    finally:
        await lab.stop()


async def test_jwt_lab_end_to_end_never_shows_the_secret(
    tmp_path: Path, serve: list[Served]
) -> None:
    """lab --jwt, then check, check --json, serve and token: verdicts shown, secret never."""
    lab_proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "--log-level",
        "debug",
        "lab",
        "--servers",
        "1",
        "--jwt",
        "--enforcement",
        "accept_expired",
        "--moderation",
        "token_users_owner",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    outputs: list[str] = []
    try:
        text = await read_until(lab_proc.stdout, lambda t: "settle:" in t)
        config = tmp_path / "lab.yaml"
        config.write_text(text)
        secret_file = re.search(r"secret_file: '([^']+)'", text)
        assert secret_file is not None
        secret = Path(secret_file.group(1)).read_text()
        assert len(secret) >= 32

        table = await run_cli("--log-level", "debug", "check", str(config))
        assert table.code == 0, table.out + table.err  # up: tokens work, however lax
        row = next(line for line in table.out.splitlines() if "lab-1" in line)
        assert "NOT ENFORCED" in row
        assert "moderator claim ignored" in row
        as_json = await run_cli("check", "--json", str(config))
        checks = {c["check"]: c for c in json.loads(as_json.out)["servers"][0]["checks"]}
        assert checks["jwt_enforced"]["reason"] == "jwt_not_enforced"
        assert "expired" in checks["jwt_enforced"]["detail"]
        assert checks["moderation"]["reason"] == "moderation_claim_ignored"
        tokens = json.loads(as_json.out)["servers"][0]["jwt"]
        assert tokens["cases"]["expired"]["passed"] is False
        assert tokens["cases"]["valid"] == {"passed": True, "age_seconds": 0.0}
        assert tokens["matrix_at"] > 0
        minted = await run_cli("token", "lab-1", str(config), "--room", "Maths-101")
        assert minted.code == 0
        assert minted.out.startswith("http://127.0.0.1:")
        assert "/Maths-101?jwt=" in minted.out
        outputs += [table.out, table.err, as_json.out, as_json.err, minted.out, minted.err]

        served = await start_serve(config, serve)
        outputs.append(served.log)
        metrics = await wait_for_metric(
            served.base, 'jitsi_jwt_case_success{case="expired",location="lab",server="lab-1"} 0.0'
        )
        assert 'jitsi_check_success{check="jwt_valid",location="lab",server="lab-1"} 1.0' in metrics
        assert (
            'jitsi_jwt_case_age_seconds{case="valid",location="lab",server="lab-1"} 0.0' in metrics
        )
        async with aiohttp.ClientSession() as session:
            for path in ("/", "/healthz"):
                async with session.get(served.base + path) as resp:
                    outputs.append(await resp.text())
        outputs.append(metrics)
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.stderr is not None
        outputs.append((await served.proc.stderr.read()).decode())
        await served.proc.wait()
    finally:
        lab_proc.terminate()
        await lab_proc.wait()
    assert lab_proc.stderr is not None
    outputs.append((await lab_proc.stderr.read()).decode())
    for output in outputs:
        assert secret not in output
