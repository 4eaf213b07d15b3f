"""The store's seams as Protocols, so collector and API tests can use a fake."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from edumon.domain.models import DeviceSample, Event, EventKind, InterfaceSample


class StoreProtocol(Protocol):
    """What the collector needs from a store (a fake in unit tests, the repository otherwise)."""

    async def write(
        self,
        interface_samples: Sequence[InterfaceSample],
        device_samples: Sequence[DeviceSample],
        events: Sequence[Event],
    ) -> None:
        """Store a batch atomically; raise StoreError (keep the batch, retry) on failure."""
        ...

    async def prune(self, now: float, retention_seconds: float) -> int:
        """Delete samples older than the retention period; return how many."""
        ...


class StoreReader(Protocol):
    """What the API reads from a store."""

    async def events(
        self,
        *,
        school: str | None = None,
        kind: EventKind | str | None = None,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        """Events newest first; ``since`` inclusive, ``until`` exclusive."""
        ...

    async def interface_history(
        self,
        device_id: str,
        interface: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[InterfaceSample]:
        """One interface's newest ``limit`` samples in [since, until), oldest first."""
        ...

    async def device_history(
        self,
        device_id: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[DeviceSample]:
        """One switch's newest ``limit`` samples in [since, until), oldest first."""
        ...

    async def ping(self) -> bool:
        """Whether the database answers (never raises)."""
        ...
