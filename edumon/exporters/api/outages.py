"""GET /api/v1/outages: the open outages, one per failure (docs/alerting.md)."""

from __future__ import annotations

from fastapi import APIRouter

from edumon.domain.outages import Outage
from edumon.exporters import schemas as s
from edumon.exporters.api.mapping import utc
from edumon.exporters.api.queries import DEFAULT_LIMIT, Limit, Offset, page_of
from edumon.runtime import Runtime


def outages_router(runtime: Runtime) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    @router.get("/outages", response_model=s.OutageList, tags=["alerts"])
    async def outages(limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> s.OutageList:
        """Open outages: schools cut off, then classrooms offline during lessons.

        A classroom outage spans breaks and lunch and ends when its terminal is back or the
        school day ends; a school outage ends when the school is reachable again.
        """
        tracker = runtime.outages
        if tracker is None:
            return s.OutageList(outages=[], page=page_of(limit, offset, 0))
        open_ = sorted(
            [*tracker.schools.values(), *tracker.classrooms.values()],
            key=lambda o: (o.kind.value != "school", o.started_at, o.school, o.classroom or ""),
        )
        return s.OutageList(
            outages=[_row(runtime, o) for o in open_[offset : offset + limit]],
            page=page_of(limit, offset, len(open_)),
        )

    return router


def _row(runtime: Runtime, o: Outage) -> s.Outage:
    school = runtime.state.inventory.schools.get(o.school)
    room = next(
        (r for r in (school.classrooms if school is not None else ()) if r.id == o.classroom),
        None,
    )
    return s.Outage(
        kind=o.kind.value,
        school=o.school,
        school_name=school.name if school is not None else o.school,
        classroom=o.classroom,
        classroom_name=room.name if room is not None else None,
        lesson=o.lesson,
        cause=o.cause,
        started_at=utc(o.started_at),
        opened_at=utc(o.opened_at),
    )
