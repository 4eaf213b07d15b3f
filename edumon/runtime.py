"""What the exporters read: the running daemon's parts, bundled once by the app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edumon.collector import Collector
from edumon.config import Config
from edumon.domain.outages import OutageTracker
from edumon.domain.schedule import NationalCalendar, Schedule
from edumon.domain.state import NetworkState
from edumon.domain.terminals import TerminalsState
from edumon.gcpauses import GcPauses
from edumon.ports import (
    AccessView,
    BrokerView,
    ClusterView,
    IngestView,
    NotifierView,
    PollerView,
)

if TYPE_CHECKING:
    from edumon.sources.agent_reports import AgentReports
    from edumon.store.repository import Store


@dataclass(slots=True)
class Runtime:
    """The daemon's live parts. Built by edumon.app; the API and /metrics only read from it."""

    config: Config
    state: NetworkState
    store: Store
    collector: Collector
    poller: PollerView | None = None
    """The SNMP poller (its statistics feed the snmp_* self-metrics); None when this process
    polls no switches (a collector fed over MQTT, or a test)."""
    started_at: float = 0.0
    terminals: TerminalsState | None = None
    """Classroom terminals' state; None in tests of the SNMP side alone."""
    ingest: IngestView | None = None
    """The MQTT ingest (its statistics feed the mqtt_* self-metrics); None without one."""
    schedule: Schedule | None = None
    """The lesson schedule (classroom_expected_online); None: no schedule-aware figures."""
    calendar: NationalCalendar | None = None
    """China's working calendar (holidays, 调休) and how far its arrangements reach."""
    mqtt_broker: str | None = None
    """host:port of the broker terminals publish to (the embedded one's actual port)."""
    notifier: NotifierView | None = None
    """The Notifier (edumon.exporters.notify) when [notify] has channels; its statistics feed
    the notify_* self-metrics and the Alertmanager receiver submits to it."""
    outages: OutageTracker | None = None
    """Open school and classroom outages (edumon.outage_watch keeps it current)."""
    gc_pauses: GcPauses | None = None
    """Garbage-collection pauses of the daemon's process (edumon_gc_pause_seconds)."""
    agent_reports: AgentReports | None = None
    """School agents' reports (edumon_agent_* self-metrics); None when no school's switches
    are reported by its agent."""
    access: AccessView | None = None
    """The API's tokens and logins (set by the app); its refusals feed
    edumon_api_auth_failures_total."""
    cluster: ClusterView | None = None
    """This collector's membership of a cluster (docs/city-deployment.md); None: it runs
    every school of the configuration."""
    embedded_broker: BrokerView | None = None
    """The embedded MQTT broker when this process runs it (its refusals feed
    edumon_mqtt_broker_refused_total); None with an external broker."""
