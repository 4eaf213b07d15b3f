"""GET /api/v1/summary: the district at a glance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter

from edumon.domain.models import EventKind
from edumon.domain.topology import Connectivity, assess
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.lookup import compliance
from edumon.runtime import Runtime


def district_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()
    state = runtime.state

    @router.get("/summary", response_model=s.Summary, tags=["district"])
    async def summary() -> s.Summary:
        """The district at a glance: targets, compliance counts, switches and events."""
        results = compliance(runtime)
        devices = state.devices.values()
        district = runtime.config.district
        topo = assess(state)
        tracker = runtime.outages
        by_kind = {k.value: runtime.collector.stats.events_total.get(k.value, 0) for k in EventKind}
        return s.Summary(
            district=s.District(code=district.code, name=district.name),
            targets=m.targets(runtime),
            schools=m.verdict_counts([sc.verdict for sc in results.values()]),
            classrooms=m.verdict_counts(
                [r.verdict for sc in results.values() for r in sc.classrooms]
            ),
            switches=s.SwitchCounts(
                total=len(state.devices),
                up=sum(1 for d in devices if d.reachable is True),
                down=sum(1 for d in devices if d.reachable is False),
                never_polled=sum(1 for d in devices if d.reachable is None),
            ),
            connectivity={
                c.value: sum(1 for link in topo.schools.values() if link.connectivity is c)
                for c in Connectivity
            },
            outages=s.OutageCounts(
                schools=len(tracker.schools) if tracker is not None else 0,
                classrooms=len(tracker.classrooms) if tracker is not None else 0,
            ),
            events=s.EventCounts(total=sum(by_kind.values()), by_kind=by_kind),
            calendar=m.calendar_status(runtime, clock()),
            generated_at=datetime.now(UTC),
        )

    return router
