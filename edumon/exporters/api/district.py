"""GET /api/v1/summary: the district at a glance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter

from edumon.domain.checks import CheckName, Verdict
from edumon.domain.models import EventKind
from edumon.domain.topology import Connectivity
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.per_school import SchoolsNow
from edumon.runtime import Runtime


def district_router(runtime: Runtime, views: SchoolsNow, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()
    state = runtime.state

    @router.get("/summary", response_model=s.Summary, tags=["district"])
    async def summary() -> s.Summary:
        """The district at a glance: targets, compliance counts, switches and events.

        Assembled from each school's cached results (recomputed only for schools that changed).
        """
        now = clock()
        results = views.all(now)
        reachable = [d.reachable for d in state.devices.values()]
        district = runtime.config.district
        tracker = runtime.outages
        by_kind = {k.value: runtime.collector.stats.events_total.get(k.value, 0) for k in EventKind}
        links = [sc.link.connectivity for sc in results]
        return s.Summary(
            district=s.District(code=district.code, name=district.name),
            targets=m.targets(runtime),
            schools=m.verdict_counts([sc.compliance.verdict for sc in results]),
            classrooms=s.VerdictCounts(
                total=sum(sc.count(None, CheckName.CLASSROOM_SPEED) for sc in results),
                passing=sum(sc.count(Verdict.PASS, CheckName.CLASSROOM_SPEED) for sc in results),
                fail=sum(sc.count(Verdict.FAIL, CheckName.CLASSROOM_SPEED) for sc in results),
                unknown=sum(sc.count(Verdict.UNKNOWN, CheckName.CLASSROOM_SPEED) for sc in results),
            ),
            switches=s.SwitchCounts(
                total=len(reachable),
                up=reachable.count(True),
                down=reachable.count(False),
                never_polled=reachable.count(None),
            ),
            connectivity={c.value: links.count(c) for c in Connectivity},
            outages=s.OutageCounts(
                schools=len(tracker.schools) if tracker is not None else 0,
                classrooms=len(tracker.classrooms) if tracker is not None else 0,
            ),
            events=s.EventCounts(total=sum(by_kind.values()), by_kind=by_kind),
            calendar=m.calendar_status(runtime, now),
            generated_at=datetime.now(UTC),
        )

    return router
