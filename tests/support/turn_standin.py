"""A tiny TURN stand-in on loopback UDP that allocates but does not relay.

It answers Allocate (no credentials asked, a relayed address per client that
no socket holds), Refresh, and CreatePermission, as ``permission`` says:
``"ok"``, ``"forbidden"`` (403) or ``"silent"`` (no answer). It forwards
nothing: every Send indication is counted and dropped, as a relay port range
behind a firewall or a wrong ``external-ip`` would lose it. ``garbage`` makes
it answer each Send indication with a broken Data indication to its sender
as well. The released allocations are counted.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

from aioice import stun


@dataclass
class TurnStandIn(asyncio.DatagramProtocol):
    permission: str = "ok"
    garbage: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    allocations: int = 0
    released: int = 0
    sends: int = 0
    transport: asyncio.DatagramTransport | None = None
    relayed: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    @classmethod
    async def start(cls, **options: object) -> TurnStandIn:
        server = cls(**options)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: server, local_addr=(server.host, 0))
        assert server.transport is not None
        server.port = server.transport.get_extra_info("sockname")[1]
        return server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if message.message_class == stun.Class.INDICATION:
            self.sends += 1
            if self.garbage:
                # a Data indication whose DATA attribute claims more than it holds
                broken = bytes(stun.Message(stun.Method.DATA, stun.Class.INDICATION))
                tail = struct.pack("!HH", 0x0013, 400) + b"xx\x00\x00"
                self.transport.sendto(broken[:2] + struct.pack("!H", 8) + broken[4:] + tail, addr)
            return
        if message.message_class != stun.Class.REQUEST:
            return
        method = message.message_method
        reply = stun.Message(method, stun.Class.RESPONSE, message.transaction_id)
        if method == stun.Method.ALLOCATE:
            self.allocations += 1
            self.relayed[addr] = (self.host, 50000 + self.allocations)
            reply.attributes["XOR-RELAYED-ADDRESS"] = self.relayed[addr]
            reply.attributes["XOR-MAPPED-ADDRESS"] = addr
            reply.attributes["LIFETIME"] = 60
        elif method == stun.Method.REFRESH:
            lifetime = int(message.attributes.get("LIFETIME", 60))
            if lifetime == 0 and self.relayed.pop(addr, None) is not None:
                self.released += 1
            reply.attributes["LIFETIME"] = lifetime
        elif method == stun.Method.CREATE_PERMISSION:
            if self.permission == "silent":
                return
            if self.permission == "forbidden":
                reply = stun.Message(method, stun.Class.ERROR, message.transaction_id)
                reply.attributes["ERROR-CODE"] = (403, "Forbidden IP")
        else:
            return
        self.transport.sendto(bytes(reply), addr)
