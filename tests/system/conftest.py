"""The system lane: tests that start real parts (Prosody, coturn, Prometheus,
Alertmanager, Chromium, nginx, blackbox_exporter, systemd-analyze, a
``serve``, ``lab`` or ``check`` child process, the benchmarks). Every test
collected under this folder is marked ``system``, so a new file here cannot
forget it; ``scripts/check --fast`` leaves them out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from monitor.lab import LabOptions, LabServer
from tests.support.databases import Database, mariadb, postgresql
from tests.support.processes import Served
from tests.support.prosody import Focus, Prosody

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture
async def serve() -> AsyncIterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        if s.proc.returncode is None:
            s.proc.kill()
            await s.proc.wait()


@pytest.fixture
async def processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Child processes of a test (Prometheus, Alertmanager), stopped after it."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for proc in started:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def labs() -> AsyncIterator[list[LabServer]]:
    # Three servers, farther and farther away: 20 ms apart, so that one slow
    # answer on a busy machine does not reorder them.
    servers = [LabServer(LabOptions(latency=0.02 * i)) for i in range(3)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    """A real Prosody for the module's tests (a module may override it with
    its own hosts)."""
    server = Prosody(tmp_path_factory.mktemp("prosody"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def focus(prosody: Prosody) -> AsyncIterator[Focus]:
    """A stand-in focus joined to ``prosody``'s component."""
    stand_in = Focus(prosody.component)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A real Moodle database for the module's tests: PostgreSQL, then MariaDB."""
    start = postgresql if request.param == "postgresql" else mariadb
    with start() as db:
        yield db


@pytest.fixture
def db(database: Database) -> Database:
    """``database`` with mod_jitsi's two tables made anew."""
    database.create_tables()
    return database
