"""GET /api/v1/outages: the open outages, one per failure (docs/alerting.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from edumon.domain.outages import Outage
from edumon.exporters import schemas as s
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import schools_or_404
from edumon.exporters.api.mapping import local_time
from edumon.exporters.api.queries import DEFAULT_LIMIT, Limit, Offset, Schools, many, page_of
from edumon.runtime import Runtime


def outages_router(runtime: Runtime) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    @router.get(
        "/outages",
        response_model=s.OutageList,
        tags=["alerts"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def outages(
        request: Request,
        school: Schools = None,
        kind: Annotated[
            list[Literal["school", "classroom"]] | None,
            Query(description="Only these kinds of outage; repeat for several"),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> s.OutageList:
        """Open outages: schools cut off, then classrooms offline during lessons.

        A classroom outage spans breaks and lunch and ends when its terminal is back or the
        school day ends; a school outage ends when the school is reachable again.
        """
        codes = schools_or_404(runtime, many("school", school), visible_schools(request))
        tracker = runtime.outages
        if tracker is None:
            return s.OutageList(outages=[], page=page_of(limit, offset, 0))
        wanted = set(codes) if codes is not None else None
        kinds = set(kind) if kind else None
        open_ = sorted(
            [
                o
                for o in (*tracker.schools.values(), *tracker.classrooms.values())
                if (wanted is None or o.school in wanted)
                and (kinds is None or o.kind.value in kinds)
            ],
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
        started_at=local_time(runtime, o.started_at),
        opened_at=local_time(runtime, o.opened_at),
    )
