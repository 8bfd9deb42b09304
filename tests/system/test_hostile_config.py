"""Cause 3 of issue 13: the config loader has limits, and a reload never stalls serve.

Each hostile file is refused by ``validate`` with exit 2, a message naming
the file and line, no traceback, within a second or so of CPU and without the
memory it once took; through SIGHUP, ``serve`` keeps answering and sets
``jitsi_monitor_config_last_reload_successful`` to 0.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.config.yaml_reader import MAX_DOCUMENT_BYTES
from tests.support.hostile import ten_thousand
from tests.support.processes import Served, read_until, start_serve
from tests.support.timing import SLACK

# 386 bytes that expand to a billion "lol"s.
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

# Reports the child's peak RSS (VmHWM) and the CPU time it used on stderr when
# it exits. CPU time, not wall time: other programs on a loaded machine
# stretch the latter, never the former.
_MEASURED = (
    "import atexit, os, sys\n"
    "def peak():\n"
    "    cpu = os.times().user + os.times().system\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write(f'\\nPEAK {int(line.split()[1]) * 1024} CPU {cpu}\\n')\n"
    "atexit.register(peak)\n"
    "from monitor.cli import main\n"
    "sys.argv = ['jitsi-monitor', *sys.argv[1:]]\n"
    "main()\n"
)


async def measured(*args: str) -> tuple[int, str, str, float, int]:
    """Run the CLI in a child: exit code, stdout, stderr, CPU seconds, peak RSS in bytes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _MEASURED,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = err.decode()
    peak = re.search(r"PEAK (\d+) CPU ([\d.]+)", text)
    assert peak is not None, text
    assert proc.returncode is not None
    seconds = float(peak.group(2))
    return proc.returncode, out.decode(), text[: peak.start()], seconds, int(peak.group(1))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[float, int]:
    """CPU seconds and peak RSS of validating a small valid config (the interpreter's own share)."""
    path = tmp_path_factory.mktemp("base") / "ok.yaml"
    path.write_text("servers:\n  - name: a\n    url: https://a.example/\n")
    code, _, err, seconds, peak = asyncio.run(measured("validate", str(path)))
    assert code == 0, err
    return seconds, peak


HOSTILE = {
    "alias bomb": (ALIAS_BOMB, ":1: YAML anchors (&a) and aliases (*name) are not allowed"),
    "alias": ("contact: *x\n", ":1: YAML aliases (*x) are not allowed"),
    "1,000 nested [": (
        "servers: " + "[" * 1000 + "\n",
        ":1: not valid YAML: exceeded maximum nesting",
    ),
    "40 nested lists": (
        "servers: " + "[" * 40 + "]" * 40 + "\n",
        ":1: values are nested more than 32",
    ),
    "200,000 nested [": ("servers: " + "[" * 200_000 + "\n", ":1: not valid YAML: exceeded"),
    "400-digit interval": (
        "defaults:\n  interval: " + "9" * 400 + "\n",
        ":2: a number has more than 20 digits",
    ),
    "1 MB scalar": ("contact: " + "x" * 1_000_000 + "\n", ":1: a value is longer than"),
    "unknown tag": ("contact: !!python/object:os.system x\n", ":1: the YAML tag"),
    "anchor": ("defaults: &d {timeout: 5s}\n", ":1: YAML anchors (&d)"),
    "merge key": ("defaults:\n  <<: {timeout: 5s}\n", ":2: YAML merge keys (<<)"),
    "two documents": ("servers: []\n---\nservers: []\n", ":2: the file holds more than one"),
    "complex key": ("? [a]\n: b\n", ":1: a key must be a plain value"),
    "huge int in a list": ("servers: [" + "1" * 5000 + "]\n", ":1: a number has more than"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_validate_refuses_hostile_yaml(
    name: str, tmp_path: Path, baseline: tuple[float, int]
) -> None:
    text, expected = HOSTILE[name]
    path = tmp_path / "servers.yaml"
    path.write_text(text)
    code, _, err, seconds, peak = await measured("validate", str(path))
    assert code == 2, err
    assert f"{path}{expected}" in err if expected.startswith(":") else expected in err, err
    assert "Traceback" not in err
    assert seconds < baseline[0] + 1.0, f"{seconds:.2f}s"
    assert peak - baseline[1] < 100 * 2**20, f"{(peak - baseline[1]) / 2**20:.0f} MiB more"


async def test_a_50_mb_file_is_refused_before_it_is_parsed(
    tmp_path: Path, baseline: tuple[float, int]
) -> None:
    path = tmp_path / "servers.yaml"
    with path.open("w") as out:
        out.write("contact: ")
        out.write("x" * (50 * 2**20))
    code, _, err, seconds, peak = await measured("validate", str(path))
    assert code == 2
    assert f"{path}: the file is larger than {MAX_DOCUMENT_BYTES} bytes" in err
    assert seconds < baseline[0] + 1.0
    assert peak - baseline[1] < 100 * 2**20


async def test_validate_summarises_a_large_config(tmp_path: Path) -> None:
    path = ten_thousand(tmp_path / "servers.yaml", 300)
    text = path.read_text() + "shard: 2/3\n"
    path.write_text(text)
    code, out, err, _, _ = await measured("validate", str(path))
    assert code == 0, err
    assert "300 servers: 300 self_hosted; 0 with jwt" in out
    assert "30 pools with 60 members" in out
    assert re.search(r"shard 2/3: \d+ servers here \(per shard: 1: \d+, 2: \d+, 3: \d+\)", out)
    assert "s00042" not in out
    assert len(out) < 400


async def test_a_hostile_reload_keeps_serve_answering(tmp_path: Path, serve: list[Served]) -> None:
    """SIGHUP with the alias bomb, then deep nesting, then a huge file: serve answers
    throughout, the reload metric goes to 0 and the log says why; a good file brings it back."""
    path = tmp_path / "servers.yaml"
    good = "servers:\n  - {name: a, url: 'http://127.0.0.1:9/', timeout: 1s}\n"
    path.write_text(good)
    served = await start_serve(path, serve)
    proc, base = served.proc, served.base
    assert proc.stderr is not None
    async with aiohttp.ClientSession() as session:

        async def reload_metric() -> str:
            async with session.get(base + "/metrics") as resp:
                body = await resp.text()
            found = re.search(r"jitsi_monitor_config_last_reload_successful\{[^}]*\} (\S+)", body)
            assert found is not None
            return found.group(1)

        cases = [
            (ALIAS_BOMB, "YAML anchors (&a) and aliases (*name) are not allowed"),
            ("servers: " + "[" * 1000 + "\n", "nesting"),
            ("contact: " + "x" * (MAX_DOCUMENT_BYTES + 10) + "\n", "larger than"),
            (good, "config reloaded"),
        ]
        for hostile, expected in cases:
            assert await reload_metric() in ("1.0", "0.0")
            path.write_text(hostile)
            proc.send_signal(signal.SIGHUP)
            slowest = 0.0  # the slowest /healthz while the reload runs
            lines = ""
            reader = asyncio.ensure_future(
                read_until(proc.stderr, lambda t, want=expected: want in t)
            )
            while not reader.done():
                started = time.monotonic()
                async with session.get(base + "/healthz") as resp:
                    assert resp.status == 200
                slowest = max(slowest, time.monotonic() - started)
                await asyncio.sleep(0.01)
            lines = reader.result()
            assert "Traceback" not in lines
            # A parser holding the loop on an alias bomb would hold it for minutes (or
            # until memory ran out); what a loaded machine adds to a /healthz is
            # far less.
            assert slowest < SLACK, f"/healthz took {slowest:.2f}s during the reload"
            want = "1.0" if hostile is good else "0.0"
            assert await reload_metric() == want, lines
