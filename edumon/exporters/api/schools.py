"""GET /api/v1/schools and /schools/{code}: verdicts, uplinks, classrooms and switches."""

from __future__ import annotations

from fastapi import APIRouter, Request

from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import school_or_404, schools_or_404
from edumon.exporters.api.per_school import SchoolNow, SchoolsNow
from edumon.exporters.api.queries import DEFAULT_LIMIT, Limit, Offset, Schools, many, page_of
from edumon.runtime import Runtime


def school_row(runtime: Runtime, sc: SchoolNow) -> s.SchoolRow:
    """One school's row of /schools, from its per-school results."""
    ref = sc.ref
    return s.SchoolRow(
        code=ref.code,
        name=ref.name,
        kind=ref.kind,
        verdict=sc.compliance.verdict,
        connectivity=m.connectivity(runtime, sc.topology, ref.code),
        uplink=m.uplink(runtime, ref),
        classrooms_total=len(ref.classrooms),
        classrooms_failing=sc.classrooms_failing,
    )


def schools_router(runtime: Runtime, views: SchoolsNow) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()
    state = runtime.state
    inventory = state.inventory

    @router.get(
        "/schools",
        response_model=s.SchoolList,
        tags=["schools"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def schools(
        request: Request, school: Schools = None, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> s.SchoolList:
        """Schools with their verdict, uplink and number of failing classrooms, a page at a time.

        Only the page's schools are read (each from its cached per-school results).
        """
        wanted = schools_or_404(runtime, many("school", school), visible_schools(request))
        codes = list(inventory.schools) if wanted is None else wanted
        rows = []
        for code in codes[offset : offset + limit]:
            sc = views.school(code)
            assert sc is not None  # listed by the inventory
            rows.append(school_row(runtime, sc))
        return s.SchoolList(schools=rows, page=page_of(limit, offset, len(codes)))

    @router.get(
        "/schools/{code}",
        response_model=s.SchoolDetail,
        tags=["schools"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def school(request: Request, code: str) -> s.SchoolDetail:
        """One school: its uplink and checks, each classroom's port and check, its switches.

        Reads only this school: its switches (and those above them), classrooms and terminals.
        """
        ref = school_or_404(runtime, code, visible_schools(request))
        sc = views.school(code)
        assert sc is not None  # school_or_404 found it
        room_checks = {r.classroom: r for r in sc.compliance.classrooms}
        terminals = {c.room.id: c for c in sc.classrooms}
        classrooms = []
        for room in ref.classrooms:
            iface = m.port_state(runtime, room.switch, room.port)
            check = room_checks.get(room.id)
            classrooms.append(
                s.Classroom(
                    id=room.id,
                    name=room.name,
                    switch=room.switch,
                    switch_name=m.switch_name(runtime, room.switch),
                    port=room.port,
                    status=m.port_status(runtime, room.switch, room.port),
                    speed_mbps=m.speed_now(runtime, room.switch, room.port),
                    last_speed_mbps=iface.last_speed_mbps if iface is not None else None,
                    check=m.check(runtime, check) if check is not None else None,
                    terminal=m.classroom_terminal(runtime, terminals[room.id]),
                )
            )
        base = m.uplink(runtime, ref)
        topo = sc.topology
        return s.SchoolDetail(
            code=code,
            name=ref.name,
            kind=ref.kind,
            verdict=sc.compliance.verdict,
            connectivity=m.connectivity(runtime, topo, code),
            uplink=s.UplinkDetail(
                **base.model_dump(), checks=[m.check(runtime, r) for r in sc.compliance.uplink]
            ),
            classrooms=classrooms,
            switches=[
                m.switch(runtime, state.devices[sid], topo)
                for sid in sc.switches
                if sid in state.devices
            ],
        )

    return router
