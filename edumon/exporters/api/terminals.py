"""GET /api/v1/terminals, /terminals/unknown and /classrooms/offline: classroom terminals now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query

from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.lookup import school_or_404
from edumon.exporters.api.per_school import SchoolNow, SchoolsNow
from edumon.exporters.api.queries import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Limit,
    Offset,
    SchoolFilter,
    page_of,
)
from edumon.runtime import Runtime
from edumon.views import ClassroomNow


def terminals_router(runtime: Runtime, views: SchoolsNow, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    def schools_for(school: str | None, now: float) -> list[SchoolNow]:
        if school is None:
            return views.all(now)
        school_or_404(runtime, school)
        one = views.school(school, now)
        return [one] if one is not None else []

    @router.get(
        "/terminals",
        response_model=s.TerminalList,
        tags=["terminals"],
        responses={404: {"description": "No school with this code"}},
    )
    async def terminals(
        school: SchoolFilter = None,
        status: Annotated[
            s.TerminalStatus | None,
            Query(description="Only this status; unknown: the school's uplink is down"),
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
        results = schools_for(school, now)
        tallies = [sc.terminals for sc in results]
        counts = s.TerminalCounts(
            total=sum(t.total for t in tallies),
            online=sum(t.online for t in tallies),
            offline=sum(t.offline for t in tallies),
            unknown=sum(t.unknown for t in tallies),
            offline_in_lesson=sum(t.offline_in_lesson for t in tallies),
        )
        total = counts.total if status is None else getattr(counts, status)
        rows: list[s.Terminal] = []
        skip = offset
        for sc in results:
            if len(rows) >= limit:
                break
            here = sc.terminals.matching(status)
            if skip >= here:
                skip -= here
                continue
            for c in sc.classrooms:
                if c.terminal is None or (status is not None and c.status != status):
                    continue
                if skip:
                    skip -= 1
                    continue
                rows.append(m.terminal(c))
                if len(rows) >= limit:
                    break
        return s.TerminalList(
            generated_at=m.utc(now),
            counts=counts,
            terminals=rows,
            page=page_of(limit, offset, total),
        )

    @router.get("/terminals/unknown", response_model=s.UnknownTerminalList, tags=["terminals"])
    async def unknown_terminals(
        limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> s.UnknownTerminalList:
        """Terminals that send heartbeats but are in no classroom: add them to the inventory."""
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
        entries = unknown.entries()
        schools = runtime.state.inventory.schools
        district = runtime.config.district.code
        return s.UnknownTerminalList(
            terminals=[
                s.UnknownTerminal(
                    district=u.district,
                    school=u.school,
                    school_known=u.district == district and u.school in schools,
                    terminal=u.terminal,
                    first_seen=m.utc(u.first_seen),
                    last_seen=m.utc(u.last_seen),
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
        responses={404: {"description": "No school with this code"}},
    )
    async def offline_classrooms(
        school: SchoolFilter = None,
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
        for sc in schools_for(school, now):
            in_lesson.extend(sc.not_online[0])
            off_schedule.extend(sc.not_online[1])
        return s.OfflineClassrooms(
            generated_at=m.utc(now),
            schedule_known=runtime.schedule is not None and runtime.calendar is not None,
            in_lesson=[m.offline_classroom(c) for c in in_lesson[offset : offset + limit]],
            off_schedule=[m.offline_classroom(c) for c in off_schedule[offset : offset + limit]],
            page=page_of(limit, offset, max(len(in_lesson), len(off_schedule))),
        )

    return router
