"""Persistence: SQLAlchemy tables, migrations and the repository the collector and API use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from edumon.domain.models import DeviceSample, Event, InterfaceSample


class StoreProtocol(Protocol):
    """What the collector needs from a store (a fake in unit tests, the repository in production)."""

    async def write(
        self,
        interface_samples: Sequence[InterfaceSample],
        device_samples: Sequence[DeviceSample],
        events: Sequence[Event],
    ) -> None: ...

    async def prune(self, now: float, retention_seconds: float) -> int: ...
