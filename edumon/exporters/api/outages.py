"""GET /api/v1/outages: the open outages, one per failure (docs/alerting.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from edumon.domain.outages import Outage
from edumon.exporters import schemas as s
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.mapping import utc
from edumon.exporters.api.queries import DEFAULT_LIMIT, Limit, Offset, page_of
from edumon.runtime import Runtime


def outages_router(runtime: Runtime) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    @router.get(
        "/outages",
        response_model=s.OutageList,
        tags=["alerts"],
        responses={404: {"description": "A school filter names a school that does not exist"}},
    )
    async def outages(
        request: Request,
        school: Annotated[
            list[str] | None, Query(description="Only these schools (codes); repeat for more")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> s.OutageList:
        """Open outages: schools cut off, then classrooms offline during lessons.

        A classroom outage spans breaks and lunch and ends when its terminal is back or the
        school day ends; a school outage ends when the school is reachable again.
        """
        shown = _schools_shown(runtime, visible_schools(request), school)
        tracker = runtime.outages
        if tracker is None:
            return s.OutageList(outages=[], page=page_of(limit, offset, 0))
        open_ = sorted(
            [
                o
                for o in (*tracker.schools.values(), *tracker.classrooms.values())
                if shown is None or o.school in shown
            ],
            key=lambda o: (o.kind.value != "school", o.started_at, o.school, o.classroom or ""),
        )
        return s.OutageList(
            outages=[_row(runtime, o) for o in open_[offset : offset + limit]],
            page=page_of(limit, offset, len(open_)),
        )

    return router


def _schools_shown(
    runtime: Runtime, visible: frozenset[str] | None, asked: list[str] | None
) -> frozenset[str] | None:
    """The schools whose outages are listed (None: all); 404 for one unknown or not visible."""
    if not asked:
        return visible
    for code in asked:
        if code not in runtime.state.inventory.schools or (
            visible is not None and code not in visible
        ):
            raise HTTPException(
                404, f"没有代码为 {code[:64]!r} 的学校 / no school with code {code[:64]!r}"
            )
    return frozenset(asked)


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
