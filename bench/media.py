"""Benchmark: the media checks against Debian's coturn on loopback (aioice's client).

Run on its own: ``python -m bench.media [--rounds N] [--quick]``. It starts a
turnserver (tests/support/coturn.py: UDP, TCP, TLS with a throwaway CA) and times,
``--rounds`` times each: a STUN Binding over UDP and TCP; a TURN Allocate
with REST credentials (401 challenge included) and its release, over UDP,
TCP and TLS; and the whole call as the media stage makes it (connection,
TLS handshake, Allocate, release); the relay test (``turn_relay``: two
allocations, CreatePermission, a datagram there and back, both released),
its round trip and the whole call, over UDP, TCP and TLS (at most 40 times
each, with pauses: coturn's relay ports are few). Then the answer
to a wrong password.
Figures are loopback figures: what the client costs, not a network.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

import trustme

from bench.common import ROOT, ms, summary

sys.path.insert(0, str(ROOT))

from monitor.checks.media.client import allocate, binding
from monitor.checks.media.relay import relay
from monitor.checks.media.result import MediaService
from monitor.net import NetError
from tests.support.coturn import Coturn, rest_credentials

# Most relay tests per transport, and the pause around them (see below).
RELAY_ROUNDS = 40
RELAY_PAUSE = 3.0


async def measure(rounds: int) -> dict[str, dict[str, float]]:
    ca = trustme.CA()
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        where = Path(folder)
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_pem.write_to_path(str(where / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
        # loopback peers allowed: the relay test relays between its own loopback relays
        coturn = Coturn(
            where / "run", where / "cert.pem", where / "key.pem", allow_loopback_peers=True
        )
        coturn.start()
        context = ssl.create_default_context()
        ca.configure_trust(context)
        figures: dict[str, dict[str, float]] = {}
        try:
            user, password = rest_credentials(coturn.secret)
            for transport in ("udp", "tcp"):
                stun = MediaService("stun", "127.0.0.1", coturn.port, transport, "bench")
                rtts = [(await binding(stun, "127.0.0.1", 3))[0] for _ in range(rounds)]
                figures[f"stun binding {transport}"] = summary(rtts)
            for kind, transport, port in (
                ("turn", "udp", coturn.port),
                ("turn", "tcp", coturn.port),
                ("turns", "tcp", coturn.tls_port),
            ):
                service = MediaService(kind, "127.0.0.1", port, transport, "bench")
                allocations, calls, errors = [], [], 0
                for _ in range(rounds):
                    t0 = time.monotonic()
                    try:
                        allocations.append(
                            await allocate(service, "127.0.0.1", user, password, context, 3)
                        )
                    except NetError as exc:
                        # back to back, the OS may hand out the local UDP port of an
                        # allocation coturn has not swept yet: 437 (allocation mismatch)
                        errors += 1
                        print(f"{kind}/{transport}: {exc.reason.value}: {exc.detail}")
                        continue
                    calls.append(time.monotonic() - t0)
                name = "tls" if kind == "turns" else transport
                figures[f"turn allocate {name}"] = summary(allocations)
                figures[f"turn whole call {name}"] = {**summary(calls), "errors": errors}
                # coturn frees released relay ports at its next sweep (about a second),
                # and the test's Coturn has 200 of them: a pause, then at most 40
                # relay tests (80 allocations) in a row.
                await asyncio.sleep(RELAY_PAUSE)
                rtts, calls, errors = [], [], 0
                for _ in range(min(rounds, RELAY_ROUNDS)):
                    t0 = time.monotonic()
                    try:
                        rtt, _, _ = await relay(
                            service, "127.0.0.1", user, password, context, lambda a: None, 3
                        )
                    except NetError as exc:
                        errors += 1
                        print(f"relay {kind}/{transport}: {exc.reason.value}: {exc.detail}")
                        continue
                    rtts.append(rtt)
                    calls.append(time.monotonic() - t0)
                figures[f"turn relay rtt {name}"] = summary(rtts)
                figures[f"turn relay whole call {name}"] = {**summary(calls), "errors": errors}
                await asyncio.sleep(RELAY_PAUSE)
            wrong = MediaService("turn", "127.0.0.1", coturn.port, "udp", "bench")
            t0 = time.monotonic()
            try:
                await allocate(wrong, "127.0.0.1", user, "wrong", None, 3)
            except NetError as exc:
                figures["turn wrong password"] = {"seconds": time.monotonic() - t0}
                print(f"wrong password: {exc.reason.value}: {exc.detail}")
        finally:
            coturn.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="5 rounds: a smoke test")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(5 if args.quick else args.rounds))
    for name, values in figures.items():
        shown = ", ".join(
            f"{k} {v:.0f}" if k in ("count", "errors") else f"{k} {ms(v)}"
            for k, v in values.items()
        )
        print(f"{name:28} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
