"""GET /api/v1/terminals, /terminals/unknown and /classrooms/offline: classroom terminals now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request

from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import schools_or_404
from edumon.exporters.api.per_school import SchoolNow, SchoolsNow
from edumon.exporters.api.queries import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Limit,
    Offset,
    Schools,
    many,
    page_of,
)
from edumon.runtime import Runtime
from edumon.views import ClassroomNow


def terminals_router(runtime: Runtime, views: SchoolsNow, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    def schools_for(request: Request, school: list[str] | None, now: float) -> list[SchoolNow]:
        codes = schools_or_404(runtime, many("school", school), visible_schools(request))
        if codes is None:
            return views.all(now)
        return [sc for c in codes if (sc := views.school(c, now)) is not None]

    @router.get(
        "/terminals",
        response_model=s.TerminalList,
        tags=["terminals"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def terminals(
        request: Request,
        school: Schools = None,
        status: Annotated[
            list[s.TerminalStatus] | None,
            Query(
                description="Only these statuses (repeat for several); unknown: the school's "
                "uplink is down"
            ),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> s.TerminalList:
        """Classroom terminals, a page at a time: status and why, last heartbeat, lesson now.

        ``counts`` are of every terminal the filters match (from each school's cached tally);
        only the page's terminals are rendered, and whole schools before it are skipped by
        their tally.
        """
        now = clock()
        results = schools_for(request, school, now)
        statuses = set(status) if status else None
        tallies = [sc.terminals for sc in results]
        counts = s.TerminalCounts(
            total=sum(t.total for t in tallies),
            online=sum(t.online for t in tallies),
            offline=sum(t.offline for t in tallies),
            unknown=sum(t.unknown for t in tallies),
            offline_in_lesson=sum(t.offline_in_lesson for t in tallies),
        )

        def matching(sc: SchoolNow) -> int:
            if statuses is None:
                return sc.terminals.total
            return sum(sc.terminals.matching(st) for st in statuses)

        total = sum(matching(sc) for sc in results)
        rows: list[s.Terminal] = []
        skip = offset
        for sc in results:
            if len(rows) >= limit:
                break
            here = matching(sc)
            if skip >= here:
                skip -= here
                continue
            for c in sc.classrooms:
                if c.terminal is None or (statuses is not None and c.status not in statuses):
                    continue
                if skip:
                    skip -= 1
                    continue
                rows.append(m.terminal(runtime, c))
                if len(rows) >= limit:
                    break
        return s.TerminalList(
            generated_at=m.local_time(runtime, now),
            counts=counts,
            terminals=rows,
            page=page_of(limit, offset, total),
        )

    @router.get(
        "/terminals/unknown",
        response_model=s.UnknownTerminalList,
        tags=["terminals"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def unknown_terminals(
        request: Request, school: Schools = None, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> s.UnknownTerminalList:
        """Terminals that send heartbeats but are in no classroom: add them to the inventory.

        With ``school``, only those reporting as those schools (known ones only: a code the
        inventory does not know answers 404).
        """
        codes = schools_or_404(runtime, many("school", school), visible_schools(request))
        state = runtime.terminals
        if state is None:
            return s.UnknownTerminalList(
                terminals=[],
                messages_total=0,
                evicted=0,
                limit=0,
                page=page_of(limit, offset, 0),
            )
        unknown = state.unknown
        schools = runtime.state.inventory.schools
        district = runtime.config.district.code
        entries = unknown.entries()
        if codes is not None:
            wanted = set(codes)
            entries = tuple(u for u in entries if u.district == district and u.school in wanted)
        return s.UnknownTerminalList(
            terminals=[
                s.UnknownTerminal(
                    district=u.district,
                    school=u.school,
                    school_name=m.school_name(runtime, u.school)
                    if u.district == district
                    else u.school,
                    school_known=u.district == district and u.school in schools,
                    terminal=u.terminal,
                    first_seen=m.local_time(runtime, u.first_seen),
                    last_seen=m.local_time(runtime, u.last_seen),
                    messages=u.messages,
                    ip=u.ip,
                    mac=u.mac,
                    agent_version=u.agent_version,
                )
                for u in entries[offset : offset + limit]
            ],
            messages_total=unknown.messages,
            evicted=unknown.evicted,
            limit=unknown.limit,
            page=page_of(limit, offset, len(entries)),
        )

    @router.get(
        "/classrooms/offline",
        response_model=s.OfflineClassrooms,
        tags=["terminals"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def offline_classrooms(
        request: Request,
        school: Schools = None,
        limit: Annotated[
            int,
            Query(
                ge=1,
                le=MAX_LIMIT,
                description="At most this many classrooms in each of the two lists",
            ),
        ] = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> s.OfflineClassrooms:
        """Classrooms whose terminal is not online now: in a scheduled lesson (alerting) or not.

        Where the school's uplink is down its classrooms are listed as ``unknown`` and never
        alert: the school's own uplink alert stands for all of them. Each list is paged by
        ``limit`` and ``offset``; ``page.total`` is the longer list's length.
        """
        now = clock()
        in_lesson: list[ClassroomNow] = []
        off_schedule: list[ClassroomNow] = []
        for sc in schools_for(request, school, now):
            in_lesson.extend(sc.not_online[0])
            off_schedule.extend(sc.not_online[1])
        return s.OfflineClassrooms(
            generated_at=m.local_time(runtime, now),
            schedule_known=runtime.schedule is not None and runtime.calendar is not None,
            in_lesson=[m.offline_classroom(runtime, c) for c in in_lesson[offset : offset + limit]],
            off_schedule=[
                m.offline_classroom(runtime, c) for c in off_schedule[offset : offset + limit]
            ],
            page=page_of(limit, offset, max(len(in_lesson), len(off_schedule))),
        )

    return router
