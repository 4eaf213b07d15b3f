"""What the exporters read: the running daemon's parts, bundled once by the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edumon.collector import Collector
from edumon.config import Config
from edumon.domain.state import NetworkState

if TYPE_CHECKING:
    from edumon.store.repository import Store


@dataclass(slots=True)
class Runtime:
    """The daemon's live parts. Built by edumon.app; the API and /metrics only read from it."""

    config: Config
    state: NetworkState
    store: Store
    collector: Collector
    poller: object | None = None
    """The SnmpPoller (its statistics feed the snmp_* self-metrics); None in tests without one."""
    started_at: float = 0.0
