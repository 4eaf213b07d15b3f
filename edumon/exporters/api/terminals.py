"""GET /api/v1/terminals, /terminals/unknown and /classrooms/offline: classroom terminals now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query

from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.lookup import school_or_404
from edumon.exporters.api.queries import SchoolFilter
from edumon.runtime import Runtime
from edumon.views import classrooms_now


def terminals_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

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
    ) -> s.TerminalList:
        """Every classroom terminal: status and why, last heartbeat, and the lesson now."""
        if school is not None:
            school_or_404(runtime, school)
        now = clock()
        rows = [
            m.terminal(c)
            for c in classrooms_now(runtime, now, school=school)
            if c.terminal is not None and (status is None or c.status == status)
        ]
        return s.TerminalList(
            generated_at=m.utc(now),
            counts=s.TerminalCounts(
                total=len(rows),
                online=sum(1 for r in rows if r.status == "online"),
                offline=sum(1 for r in rows if r.status == "offline"),
                unknown=sum(1 for r in rows if r.status == "unknown"),
                offline_in_lesson=sum(1 for r in rows if r.offline_in_lesson),
            ),
            terminals=rows,
        )

    @router.get("/terminals/unknown", response_model=s.UnknownTerminalList, tags=["terminals"])
    async def unknown_terminals() -> s.UnknownTerminalList:
        """Terminals that send heartbeats but are in no classroom: add them to the inventory."""
        state = runtime.terminals
        if state is None:
            return s.UnknownTerminalList(terminals=[], messages_total=0, evicted=0, limit=0)
        unknown = state.unknown
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
                for u in unknown.entries()
            ],
            messages_total=unknown.messages,
            evicted=unknown.evicted,
            limit=unknown.limit,
        )

    @router.get(
        "/classrooms/offline",
        response_model=s.OfflineClassrooms,
        tags=["terminals"],
        responses={404: {"description": "No school with this code"}},
    )
    async def offline_classrooms(
        school: SchoolFilter = None,
    ) -> s.OfflineClassrooms:
        """Classrooms whose terminal is not online now: in a scheduled lesson (alerting) or not.

        Where the school's uplink is down its classrooms are listed as ``unknown`` and never
        alert: the school's own uplink alert stands for all of them.
        """
        if school is not None:
            school_or_404(runtime, school)
        now = clock()
        in_lesson: list[s.OfflineClassroom] = []
        off_schedule: list[s.OfflineClassroom] = []
        for c in classrooms_now(runtime, now, school=school):
            if c.terminal is None or c.online:
                continue
            (in_lesson if c.expected_online else off_schedule).append(m.offline_classroom(c))
        return s.OfflineClassrooms(
            generated_at=m.utc(now),
            schedule_known=runtime.schedule is not None and runtime.calendar is not None,
            in_lesson=in_lesson,
            off_schedule=off_schedule,
        )

    return router
