"""One MQTT ingest per held shard, each with the shard's fixed client id and persistent session.

A shard's client id is the same on every collector (``edumon-{district}-shard-{k}``), so the
QoS 1 messages the broker queued for the session while the shard's previous holder was dead
are delivered to whichever collector holds the shard next. Should a stale holder still be
connected, the broker disconnects it when the new one connects with the same id (MQTT's session
take-over): the broker fences the ingest.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence

from edumon.sources.mqtt.ingest import IngestStats, MqttIngest, MqttSettings, Sink


def shard_client_id(district: str, shard: int) -> str:
    """The MQTT client id of a shard's ingest, the same on every collector."""
    return f"edumon-{district}-shard-{shard}"


class ShardIngests:
    """The ingests of the shards a collector runs, seen by the exporters as one."""

    def __init__(
        self,
        settings: MqttSettings,
        shards: Mapping[int, Sequence[str]],
        sink: Sink,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.ingests = [
            MqttIngest(
                dataclasses.replace(
                    settings,
                    client_id=shard_client_id(settings.district, shard),
                    clean_session=False,
                    schools=tuple(schools),
                ),
                sink,
                clock=clock,
            )
            for shard, schools in sorted(shards.items())
            if schools
        ]
        self._clock = clock

    @property
    def stats(self) -> IngestStats:
        """The ingests' figures added up (connected: every one is).

        A collector that holds no shard is connected for all it runs: it is not blind.
        """
        total = IngestStats()
        total.connected = True
        for ingest in self.ingests:
            s = ingest.stats
            total.received_total += s.received_total
            total.accepted_total += s.accepted_total
            for kind, n in s.accepted_by_kind.items():
                total.accepted_by_kind[kind] = total.accepted_by_kind.get(kind, 0) + n
            for reason, n in s.rejected_total.items():
                total.rejected_total[reason] = total.rejected_total.get(reason, 0) + n
            total.connected = total.connected and s.connected
            total.connects_total += s.connects_total
            total.reconnects_total += s.reconnects_total
            total.connect_failures_total += s.connect_failures_total
            if s.last_message_at is not None:
                total.last_message_at = max(total.last_message_at or 0.0, s.last_message_at)
        return total

    def received_until(self) -> float:
        """The earliest of the ingests' (see ``MqttIngest.received_until``)."""
        return min((i.received_until() for i in self.ingests), default=self._clock())

    async def run(self) -> None:
        """Run every shard's ingest until cancelled or closed."""
        if not self.ingests:
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            for ingest in self.ingests:
                tg.create_task(ingest.run(), name=f"mqtt-ingest-{ingest.settings.client_id}")

    async def aclose(self) -> None:
        """Disconnect every ingest cleanly."""
        await asyncio.gather(*(ingest.aclose() for ingest in self.ingests))
