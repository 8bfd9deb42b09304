"""A real TURN server (Debian's coturn, ``turnserver``) on loopback, for the media tests.

``Coturn`` starts it as a child in the foreground with its own config file
(no system service): UDP and TCP on one port, TLS on another with a trustme
certificate, TURN REST credentials (``use-auth-secret`` with a
``static-auth-secret``, the scheme Prosody's ``mod_turn_external`` hands
out), no CLI, relays on loopback only. Loopback peers are refused, as
coturn does by default, unless ``allow_loopback_peers`` (the relay test,
``turn_relay``, relays between two of its own loopback allocations);
``denied_peer_ip`` adds a ``denied-peer-ip`` range. ``stop`` ends it; the fixtures call it, and
``atexit`` makes sure no turnserver outlives the test session.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.prosody import free_port

REALM = "meet.test"
SECRET = "coturn-test-secret-0123456789"

CONFIG = """
# written by the tests; see tests/support/coturn.py
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port={port}
tls-listening-port={tls_port}
min-port={relay_min}
max-port={relay_max}
realm={realm}
use-auth-secret
static-auth-secret={secret}
cert={cert}
pkey={key}
no-cli
no-dtls
no-multicast-peers
no-rfc5780
no-stun-backward-compatibility
user-quota={quota}
pidfile={dir}/turnserver.pid
userdb={dir}/turndb
log-file={dir}/turnserver.log
simple-log
"""

_RUNNING: set[subprocess.Popen[bytes]] = set()


def _kill_all() -> None:
    for proc in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


atexit.register(_kill_all)


def rest_credentials(secret: str, ttl: float = 3600, user: str = "") -> tuple[str, str]:
    """A TURN REST username and password, as mod_external_services makes them."""
    username = f"{int(time.time() + ttl)}" + (f":{user}" if user else "")
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@dataclass
class Coturn:
    """One turnserver on 127.0.0.1: UDP and TCP on ``port``, TLS on ``tls_port``."""

    dir: Path
    cert: Path
    key: Path
    secret: str = SECRET
    quota: int = 0  # allocations per user at once (0: no limit)
    udp_only: bool = False  # no TCP and no TLS listener
    allow_loopback_peers: bool = False  # coturn's default refuses them
    denied_peer_ip: str | None = None  # a denied-peer-ip range, e.g. "127.0.0.1"
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("turnserver") or "/usr/bin/turnserver"
        assert Path(binary).exists(), "turnserver is missing: scripts/check installs coturn"
        self.dir.mkdir(parents=True, exist_ok=True)
        relay = 20000 + (os.getpid() * 97 + self.port) % 30000
        config = self.dir / "turnserver.conf"
        config.write_text(
            CONFIG.format(
                port=self.port,
                tls_port=self.tls_port,
                relay_min=relay,
                relay_max=relay + 200,
                realm=REALM,
                secret=self.secret,
                cert=self.cert,
                key=self.key,
                quota=self.quota,
                dir=self.dir,
            )
            + ("no-tcp\nno-tls\n" if self.udp_only else "")
            + ("allow-loopback-peers\n" if self.allow_loopback_peers else "")
            + (f"denied-peer-ip={self.denied_peer_ip}\n" if self.denied_peer_ip else "")
        )
        with (self.dir / "stderr.log").open("wb") as stderr:
            self.proc = subprocess.Popen(
                [binary, "-c", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        _RUNNING.add(self.proc)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited at start:\n{self.log()}")
            if self.udp_only and "Total General servers" in self.log():
                return
            if _listening(self.port) and _listening(self.tls_port):
                time.sleep(0.1)  # the UDP listener comes up with the TCP one
                return
            time.sleep(0.05)
        raise RuntimeError(f"turnserver did not start listening:\n{self.log()}")

    def log(self) -> str:
        parts = []
        for path in [*sorted(self.dir.glob("turnserver*.log")), self.dir / "stderr.log"]:
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        _RUNNING.discard(proc)
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self, secret: str | None = None) -> None:
        """Stop, change the secret if given, start again on the same ports."""
        self.stop()
        if secret is not None:
            self.secret = secret
        self.start()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
