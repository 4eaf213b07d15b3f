"""A hostile SNMP v2c agent on loopback UDP: it answers every table walk with endless rows."""

from __future__ import annotations

import asyncio
from typing import Any

from edumon.domain import oids
from edumon.domain.models import NoValue
from edumon.sources.snmp import ber

Oid = tuple[int, ...]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, agent: EndlessAgent) -> None:
        self.agent = agent
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.agent.reply_to(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class EndlessAgent:
    """Answers GET for the system group, and GETBULK with ever-increasing OIDs in each column.

    Args:
        community: the read community.
        rows_per_reply: rows per GETBULK reply; None honours max-repetitions, 1 is an agent
            that ignores it (so the walk needs one request per row).
    """

    def __init__(self, community: str, *, rows_per_reply: int | None = None) -> None:
        self.community = community.encode()
        self.rows_per_reply = rows_per_reply
        self.requests = 0
        self.bulk_requests = 0
        self.host = "127.0.0.1"
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> EndlessAgent:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, 0)
        )
        protocol.transport = transport
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def _value(self, oid: Oid) -> ber.EncodableValue:
        if oid == oids.SYS_UPTIME_0:
            return ber.timeticks(123_456)
        if oid in (oids.SYS_NAME_0, oids.SYS_DESCR_0):
            return b"HOSTILE"
        return NoValue.NO_SUCH_OBJECT

    def reply_to(self, data: bytes) -> bytes | None:
        self.requests += 1
        message = ber.decode_message(data)
        assert isinstance(message, ber.CommunityMessage)
        if message.community != self.community:
            return None
        pdu = message.pdu
        asked = [oid for oid, _ in pdu.varbinds]
        varbinds: list[ber.EncodableVarBind]
        if pdu.type == ber.PduType.GET:
            varbinds = [(oid, self._value(oid)) for oid in asked]
        elif pdu.type == ber.PduType.GET_BULK:
            self.bulk_requests += 1
            reps = self.rows_per_reply or pdu.max_repetitions
            varbinds = []
            cursors = list(asked)
            for _ in range(reps):
                # Each column's next row: one more than the last, forever (a looping agent).
                cursors = [(*c, 1) if len(c) <= 10 else (*c[:-1], c[-1] + 1) for c in cursors]
                varbinds.extend((c, 1) for c in cursors)
        else:
            return None
        reply = ber.Pdu(ber.PduType.RESPONSE, pdu.request_id, 0, 0, varbinds)
        return ber.encode_community_message(self.community, reply)
