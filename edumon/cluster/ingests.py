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
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from edumon.sources.mqtt.ingest import IngestStats, MqttIngest, MqttSettings, Sink
from edumon.wire import Heartbeat, Status


def shard_client_id(district: str, shard: int) -> str:
    """The MQTT client id of a shard's ingest, the same on every collector."""
    return f"edumon-{district}-shard-{shard}"


class AckRouter:
    """Turns the collector's count of accepted messages into each shard ingest's own count.

    The collector numbers the messages its sink accepts across all ingests, and says after each
    commit how many of them are stored; an ingest that acknowledges after store counts its own
    messages only. Every accepted message is noted here (which ingest, its number there), so a
    commit mark becomes, per ingest, the number of its messages stored.
    """

    def __init__(self, ingests: int) -> None:
        self._accepted = 0
        self._local = [0] * ingests
        self._marks: deque[tuple[int, int, int]] = deque()

    def accepted(self, ingest: int) -> None:
        """One more message of ``ingest`` went to the collector."""
        self._accepted += 1
        self._local[ingest] += 1
        self._marks.append((self._accepted, ingest, self._local[ingest]))

    def committed(self, accepted: int) -> dict[int, int]:
        """The collector stored its first ``accepted`` messages: per ingest, how many of its own."""
        out: dict[int, int] = {}
        marks = self._marks
        while marks and marks[0][0] <= accepted:
            _, ingest, local = marks.popleft()
            out[ingest] = local
        return out


class ShardIngests:
    """The ingests of the shards a collector runs, seen by the exporters as one."""

    def __init__(
        self,
        settings: MqttSettings,
        shards: Mapping[int, Sequence[str]],
        sink: Sink,
        *,
        clock: Callable[[], float],
        acknowledge: Callable[[MqttIngest, int], None] | None = None,
        ack_after_store: bool = False,
        paused: Callable[[], bool] | None = None,
    ) -> None:
        """Args:
        settings: the broker and district; the client id, session and schools are set here.
        shards: the shards held and their schools (a shard without schools gets no ingest).
        sink: the collector's, shared by every ingest.
        clock: the wall clock.
        acknowledge: for an ingest that acknowledges after store, what tells it that its
            first N messages are stored (see :meth:`committed`).
        ack_after_store: each shard's ingest acknowledges a QoS 1 message only once the
            collector has stored it (``MqttIngest``).
        paused: whether the collector wants reading to stop (its queue is nearly full).
        """
        self.settings = settings
        held = [(shard, schools) for shard, schools in sorted(shards.items()) if schools]
        self._router = AckRouter(len(held))
        self._acknowledge = acknowledge
        self.delivering: MqttIngest | None = None
        """The ingest whose message the sink is handling now."""
        self.ingests = [
            MqttIngest(
                dataclasses.replace(
                    settings,
                    client_id=shard_client_id(settings.district, shard),
                    clean_session=False,
                    schools=tuple(schools),
                ),
                self._sink_of(i, sink),
                clock=clock,
                ack_after_store=ack_after_store,
                paused=paused,
            )
            for i, (shard, schools) in enumerate(held)
        ]
        self._clock = clock

    def _sink_of(self, index: int, sink: Sink) -> Sink:
        router = self._router

        def deliver(message: Heartbeat | Status, received_at: float) -> None:
            router.accepted(index)
            self.delivering = self.ingests[index]
            try:
                sink(message, received_at)
            finally:
                self.delivering = None

        return deliver

    def in_backlog(self) -> bool:
        """Whether the message being delivered comes from its shard session's queued backlog."""
        ingest = self.delivering
        return ingest is not None and ingest.in_backlog()

    def committed(self, accepted: int) -> None:
        """The collector stored its first ``accepted`` messages: tell each ingest its share."""
        for index, local in self._router.committed(accepted).items():
            if self._acknowledge is not None:
                self._acknowledge(self.ingests[index], local)

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
