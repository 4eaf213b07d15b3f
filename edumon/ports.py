"""What the exporters read from the daemon's sources and notifier, as small Protocols.

The API and /metrics depend on these, not on the classes behind them: the SNMP poller
(``edumon.sources.snmp.poller.SnmpPoller``), the MQTT ingest
(``edumon.sources.mqtt.ingest.MqttIngest``), the embedded broker
(``edumon.sources.mqtt.broker.EmbeddedBroker``) and the notifier
(``edumon.exporters.notify.Notifier``) satisfy them, and a test may hand in anything shaped
alike. The statistics are the sources' own counter objects, read at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edumon.cluster.member import ClusterStats
    from edumon.domain.alerts import Alert
    from edumon.exporters.notify.stats import NotifyStats
    from edumon.sources.mqtt.ingest import IngestStats
    from edumon.sources.snmp.poller import DeviceStats, PollerStats
    from edumon.sources.snmp.transport import TransportStats


class PolledSwitch(Protocol):
    """A switch the poller polls, as far as the exporters care: its id."""

    @property
    def id(self) -> str: ...


class PollerView(Protocol):
    """The SNMP poller's statistics (the edumon_snmp_* self-metrics)."""

    @property
    def stats(self) -> PollerStats: ...

    @property
    def device_stats(self) -> Mapping[str, DeviceStats]: ...

    @property
    def switches(self) -> Sequence[PolledSwitch]: ...

    @property
    def transport_stats(self) -> TransportStats: ...


class IngestView(Protocol):
    """The MQTT ingest's statistics (the edumon_mqtt_* self-metrics)."""

    @property
    def stats(self) -> IngestStats: ...


class BrokerView(Protocol):
    """The embedded MQTT broker (edumon.sources.mqtt.broker.EmbeddedBroker): connections it
    refused or ended, by reason (edumon_mqtt_broker_refused_total)."""

    @property
    def refused(self) -> Mapping[str, int]: ...


class NotifierView(Protocol):
    """The notifier: its statistics (edumon_notify_*) and where alerts are submitted."""

    @property
    def stats(self) -> NotifyStats: ...

    @property
    def channel_names(self) -> list[str]: ...

    @property
    def queue_depth(self) -> int: ...

    def submit(self, alerts: Iterable[Alert]) -> int:
        """Queue alerts for delivery without waiting; how many were queued."""
        ...

    def reject(self, reason: str, count: int = 1) -> None:
        """Count alerts a source could not turn into an Alert."""
        ...


class AccessView(Protocol):
    """The API's access control (edumon.exporters.api.access): refused requests by reason."""

    @property
    def failures(self) -> Mapping[str, int]: ...


class ClusterView(Protocol):
    """One collector of several (edumon.cluster.member.ClusterMember): the edumon_cluster_*
    self-metrics."""

    @property
    def me(self) -> str: ...

    @property
    def shards_total(self) -> int: ...

    @property
    def active(self) -> frozenset[int]: ...

    @property
    def stats(self) -> ClusterStats: ...
