"""Prometheus /metrics: the district's state as Prometheus series, cached per entity.

Naming follows Prometheus conventions: prefix ``edumon_``, base units (bytes, seconds),
``_total`` counters and ``_info`` series that carry display names for ``group_left`` joins.
Labels are ids: ``school`` (code), ``classroom`` (id), ``device`` (switch id) and
``interface`` (ifName).

Series budget: only the ports the inventory names (school uplinks, classroom ports and
inter-switch links) are exported by default; every other port (Console, NULL, Vlanif, unused
access ports) only with ``export_all_ports`` for its switch or globally. The API shows them all.
``[metrics] detail = "essential"`` also leaves out the per-entity diagnostics the API shows
(``families.DIAGNOSTICS``) and keeps what the shipped rules and a NOC overview read.
Label values are short and stable: no multi-line sysDescr, no terminal IP or MAC. A state is one
series carrying its current value as a label, never one series per possible value:
``edumon_check_status{verdict}``, ``edumon_terminal_offline_reason{reason}`` (only while the
terminal is not online), ``edumon_device_state{state}``, ``edumon_school_connectivity{state}``.

Ports of a switch that cannot be reached (or has not answered yet) are unknown, not down:
their ``edumon_interface_up``/admin status/speed/counter series are omitted for as long
as the switch is unreachable, while ``edumon_interface_info`` stays, so that an alert on
``edumon_interface_up == 0`` never fires forty times for one dead switch (the switch's own
``edumon_device_up == 0`` does, once).

Octet and error counters are 64-bit monotonic totals that edumon keeps: a 32-bit ifInOctets
that wraps goes on counting past 2^32, so ``rate()`` never mistakes a wrap for a reset.

Classroom terminals: ``edumon_terminal_up{school,classroom,terminal}`` is 0 for a terminal
never heard from, and ``edumon_classroom_expected_online{school,classroom}`` says whether a
lesson is scheduled at scrape time (for dashboards).

Parent failure and outages (docs/topology.md, docs/alerting.md): every school's
``edumon_school_connectivity{state}`` and every switch's ``edumon_device_state{state}`` are
present at every scrape; ``edumon_school_outage`` and ``edumon_classroom_outage`` are edumon's
outages — one per failure, a classroom's kept across breaks and lunch — which the shipped rules
in deploy/prometheus/rules/ alert on.

How a scrape stays in milliseconds at city scale: ``edumon.exporters.metrics.exposition``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from edumon.exporters.metrics.entities import BYTES_PER_MBIT, mbps_to_bytes
from edumon.exporters.metrics.exposition import Exposition
from edumon.runtime import Runtime

__all__ = ["BYTES_PER_MBIT", "Exposition", "create_registry", "mbps_to_bytes"]


class _Parsed:
    """A prometheus_client collector that reads the families back from an ``Exposition``."""

    def __init__(self, exposition: Exposition) -> None:
        self._exposition = exposition

    def collect(self) -> Iterable[Metric]:
        return text_string_to_metric_families(self._exposition.render().decode())


def create_registry(
    runtime: Runtime, *, clock: Callable[[], float] = time.time
) -> CollectorRegistry:
    """A registry over one ``Exposition`` of ``runtime``, for tools that want one.

    The app streams ``Exposition.chunks`` itself; this parses that text back into families,
    which costs what the cache saves, so it is for tests and small districts.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Parsed(Exposition(runtime, clock=clock)))
    return registry
