"""``status.listen`` on a ``serve`` child: a second port with the pages and
badges only, while the main port keeps /metrics, /probe and the JSON."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import Served, start_serve
from tests.support.sites import free_port
from tests.support.status import get


async def test_status_listen_serves_the_pages_and_nothing_else(
    tmp_path: Path, serve: list[Served]
) -> None:
    """``status.listen``: a second port with the pages and badges only; the
    main port (on loopback) keeps /metrics, /probe, the JSON."""
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(
        "servers:\n  - {name: alpha, url: 'http://127.0.0.1:9/'}\n"
        "pools:\n  - {name: course, servers: [alpha]}\n"
        "history: {file: ''}\n"
        f"status: {{public: true, listen: {{host: 127.0.0.1, port: {port}}}}}\n"
    )
    served = await start_serve(config, serve)
    pages = f"http://127.0.0.1:{port}"
    for path in ("/", "/servers/alpha", "/pools/course", "/badge/alpha.svg"):
        status, _, _ = await get(pages, path)
        assert status == 200, path
    for path in (
        "/metrics",
        "/probe?target=alpha",
        "/api/v1/servers",
        "/api/v1/pools/course",
        "/healthz",
        "/go/course/room",
    ):
        status, _, _ = await get(pages, path)
        assert status == 404, path
        status, _, _ = await get(served.base, path.replace("/go/course/room", "/healthz"))
        assert status != 404, path  # still on the main port
