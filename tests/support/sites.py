"""Loopback sites for the tests: a Jitsi-shaped web frontend, TLS contexts, a
DNS server that knows no names, configs and one ladder through a real Runner."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import struct
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

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


class Zone(asyncio.DatagramProtocol):
    """A DNS server that knows ``names`` (A records; AAAA gets an empty answer)
    and nothing else (NXDOMAIN)."""

    def __init__(self, names: typing.Mapping[str, str]) -> None:
        self.names = names

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        (qid,) = struct.unpack("!H", data[:2])
        labels, at = [], 12
        while data[at]:
            labels.append(data[at + 1 : at + 1 + data[at]].decode())
            at += 1 + data[at]
        qtype = struct.unpack("!H", data[at + 1 : at + 3])[0]
        question = data[12 : at + 5]
        address = self.names.get(".".join(labels).lower())
        if address is None:
            self.transport.sendto(struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question, addr)
            return
        answers = b""
        if qtype == 1:
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
        count = 1 if answers else 0
        header = struct.pack("!HHHHHH", qid, 0x8180, 1, count, 0, 0)
        self.transport.sendto(header + question + answers, addr)


async def start_zone(
    names: typing.Mapping[str, str] | None = None,
) -> tuple[asyncio.DatagramTransport, str]:
    """A ``Zone`` on loopback (no names: every answer NXDOMAIN); its transport, to
    close, and its address, ``127.0.0.1:port``."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: Zone(names or {}), local_addr=("127.0.0.1", 0)
    )
    return transport, f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"


async def eventually(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Wait until ``condition()`` holds (the other side may still be finishing)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers that need one up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
