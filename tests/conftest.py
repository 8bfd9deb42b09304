"""Real servers on loopback for the tests: HTTP(S) sites, a DNS server, configs."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import re
import socket
import ssl
import struct
import sys
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from monitor.config import MonitorConfig, parse_config
from monitor.domain import Target
from monitor.model import ServerReport
from monitor.runner import Runner

CONFIG_JS = """
var config = {
    hosts: {
        domain: 'meet.test',
        muc: 'conference.meet.test'
    },
    bosh: '/http-bind',
    websocket: 'ws://127.0.0.1:9/xmpp-websocket',
    disableIframeAPI: %s,
};
"""
EXTERNAL_API = "function JitsiMeetExternalAPI(domain, options) { /* test */ }\n"


@dataclass
class Site:
    """A running loopback site and what it saw."""

    url: str
    port: int
    requests: list[web.Request] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def text_handler(text: str, status: int = 200, content_type: str = "text/plain") -> Handler:
    async def handle(_: web.Request) -> web.Response:
        return web.Response(text=text, status=status, content_type=content_type)

    return handle


def jitsi_app(
    config_js: str | None = None,
    *,
    disable_iframe: bool = False,
    index_status: int = 200,
    external_api: str = EXTERNAL_API,
    routes: dict[str, Handler] | None = None,
) -> web.Application:
    """A web frontend shaped like a Jitsi deployment's; ``routes`` replace its files."""
    body = config_js if config_js is not None else CONFIG_JS % str(disable_iframe).lower()
    handlers: dict[str, Handler] = {
        "/": text_handler("<html><title>Jitsi Meet</title></html>", index_status, "text/html"),
        "/config.js": text_handler(body, content_type="application/javascript"),
        "/external_api.js": text_handler(external_api, content_type="application/javascript"),
    }
    handlers.update(routes or {})
    app = web.Application()
    for path, handler in handlers.items():
        app.router.add_get(path, handler)
    return app


StartSite = Callable[..., Awaitable[Site]]


@pytest.fixture
async def start_site() -> AsyncIterator[StartSite]:
    """Start an aiohttp app on 127.0.0.1 (optionally TLS); records requests and peers."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Site:
        site_info = Site(url="", port=0)

        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            site_info.requests.append(request)
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer:
                site_info.peers.add((peer[0], peer[1]))
            return await handler(request)

        app.middlewares.append(record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        host = "localhost" if ssl_context else "127.0.0.1"
        site_info.url = f"{scheme}://{host}:{port}/"
        site_info.port = port
        return site_info

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(
    ca: trustme.CA, *names: str, not_after: dt.datetime | None = None
) -> ssl.SSLContext:
    """A server TLS context with a certificate from ``ca`` for ``names``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert = ca.issue_cert(*(names or ("localhost", "127.0.0.1")), not_after=not_after)
    cert.configure_cert(ctx)
    return ctx


def self_signed_context(tmp_path: Path, name: str = "localhost") -> ssl.SSLContext:
    """A server TLS context with a certificate that signs itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "self.pem", tmp_path / "self.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


async def probe_once(cfg: MonitorConfig, index: int = 0) -> ServerReport:
    """One ladder of the config's ``index``-th server through a real Runner."""
    runner = Runner(cfg)
    try:
        return await runner.run_now(cfg.targets()[index])
    finally:
        await runner.close()


async def read_until(stream: asyncio.StreamReader | None, done: Callable[[str], bool]) -> str:
    """Lines of a child's output until ``done`` holds for all read so far."""
    assert stream is not None
    text = ""
    while not done(text):
        line = await asyncio.wait_for(stream.readline(), 30)
        assert line, "the process ended before printing what was expected"
        text += line.decode()
    return text


def rsa_pem() -> tuple[str, rsa.RSAPrivateKey]:
    """A fresh RSA private key, as PEM text and as a key object."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key


def make_config(text: str, tmp_path: Path | None = None) -> MonitorConfig:
    return parse_config(text, "test.yaml", tmp_path)


def target(url: str, **settings: object) -> Target:
    """A Target with the defaults a config would give, overridden by ``settings``."""
    base: dict[str, object] = {"name": "t", "url": url, "kind": "self_hosted", "interval": 60.0}
    base["timeout"] = 5.0
    base.update(settings)
    return Target(**base)  # type: ignore[arg-type]


class _NxDomain(asyncio.DatagramProtocol):
    """Answers every DNS query with NXDOMAIN."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        (qid,) = struct.unpack("!H", data[:2])
        header = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0)
        self.transport.sendto(header + data[12:], addr)


@pytest.fixture
async def nxdomain_dns() -> AsyncIterator[str]:
    """A DNS server on loopback that knows no names; yields ``127.0.0.1:port``."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_NxDomain, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    yield f"127.0.0.1:{port}"
    transport.close()


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    base: str
    config: Path


@pytest.fixture
async def serve() -> AsyncIterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        if s.proc.returncode is None:
            s.proc.kill()
            await s.proc.wait()


async def start_serve(config: Path, started: list[Served], *options: str) -> Served:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "serve",
        "--port",
        "0",
        *options,
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "serve exited before listening"
        if m := re.search(r"metrics on (http://[\d.]+:\d+)/metrics", line):
            served = Served(proc, m.group(1), config)
            started.append(served)
            return served


async def eventually(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Wait until ``condition()`` holds (the other side may still be finishing)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Surface unclosed sockets and transports in the test that leaked them."""
    yield
    gc.collect()


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers that need one up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 30) -> None:
    """Wait until ``url`` answers 200 (a child server has started)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            assert proc.returncode is None, "the server exited"
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert loop.time() < end, f"{url} never answered"
            await asyncio.sleep(0.2)


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


async def start(
    started: list[asyncio.subprocess.Process], *args: str | Path
) -> asyncio.subprocess.Process:
    """Start a child process with its output discarded; the fixture stops it."""
    proc = await asyncio.create_subprocess_exec(
        *(str(a) for a in args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    started.append(proc)
    return proc


async def start_prometheus(
    started: list[asyncio.subprocess.Process], workdir: Path, config: dict[str, object]
) -> str:
    """A real Prometheus (Debian's) on a loopback port; its base URL."""
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps(config))
    port = free_port()
    proc = await start(
        started,
        "prometheus",
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    )
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/-/ready", proc)
    return base
