"""Cause 1 and 2 of issue 13 through the commands: ``check`` and ``serve``
print every row of hostile server text as text, never as markup or raw
control characters."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_cli, write_config
from tests.support.hostile import HOSTILE, raw_free, raw_http
from tests.support.processes import Served, start_serve
from tests.support.sites import StartSite, jitsi_app


async def test_check_and_serve_print_every_row(start_site: StartSite, tmp_path: Path) -> None:
    """End to end: a redirect to ``/[/]`` with escapes (cause 1 and 2) beside a healthy server."""
    location = HOSTILE.replace("\r\n", " ").encode()  # one header line, raw bytes

    def redirect(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 302 Found\r\nLocation: /" + location + b"\x9b\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )

    good = await start_site(jitsi_app())
    async with raw_http(redirect) as bad_url:
        path = write_config(
            tmp_path, {"good": good.url, "bad": bad_url}, "defaults: {max_redirects: 0}"
        )
        result = await run_cli("check", str(path))
        assert result.code == 1, result.err
        assert "Traceback" not in result.err
        assert "MarkupError" not in result.err
        assert "good" in result.out
        assert "bad" in result.out
        assert "too_many_redirects" in result.out
        assert "[/]" in result.out
        assert "[link=" in result.out
        assert raw_free(result.out, allow_newlines=True)
        assert "\\x1b[2J" in result.out

        as_json = await run_cli("check", "--json", str(path))
        assert as_json.out.isascii()
        verdicts = {s["server"]: s["verdict"] for s in json.loads(as_json.out)["servers"]}
        assert verdicts == {"good": "up", "bad": "down"}

        served: list[Served] = []
        try:
            s = await start_serve(path, served)
            assert s.proc.stderr is not None
            line = ""
            while "server bad is down" not in line:
                line = (await s.proc.stderr.readline()).decode()
                assert line, "serve ended"
            assert raw_free(line.rstrip("\n"))
            assert "\\x1b[2J" in line
            assert "\\x9b" in line
        finally:
            for one in served:
                one.proc.kill()
                await one.proc.wait()
