"""GET /api/v1/schools and /schools/{code}: verdicts, uplinks, classrooms and switches."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from edumon.domain.checks import Verdict
from edumon.domain.topology import assess
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.lookup import compliance, school_or_404
from edumon.runtime import Runtime
from edumon.views import classrooms_now


def schools_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()
    state = runtime.state
    inventory = state.inventory

    @router.get("/schools", response_model=s.SchoolList, tags=["schools"])
    async def schools() -> s.SchoolList:
        """Every school with its verdict, uplink and number of failing classrooms."""
        results = compliance(runtime)
        topo = assess(state)
        rows = []
        for code, school in inventory.schools.items():
            sc = results[code]
            rows.append(
                s.SchoolRow(
                    code=code,
                    name=school.name,
                    kind=school.kind,
                    verdict=sc.verdict,
                    connectivity=m.connectivity(runtime, topo, code),
                    uplink=m.uplink(runtime, school),
                    classrooms_total=len(school.classrooms),
                    classrooms_failing=sum(1 for r in sc.classrooms if r.verdict is Verdict.FAIL),
                )
            )
        return s.SchoolList(schools=rows)

    @router.get(
        "/schools/{code}",
        response_model=s.SchoolDetail,
        tags=["schools"],
        responses={404: {"description": "No school with this code"}},
    )
    async def school(code: str) -> s.SchoolDetail:
        """One school: its uplink and checks, each classroom's port and check, its switches."""
        ref = school_or_404(runtime, code)
        sc = compliance(runtime)[code]
        room_checks = {r.classroom: r for r in sc.classrooms}
        terminals = {c.room.id: c for c in classrooms_now(runtime, clock(), school=code)}
        classrooms = []
        for room in ref.classrooms:
            iface = m.port_state(runtime, room.switch, room.port)
            check = room_checks.get(room.id)
            classrooms.append(
                s.Classroom(
                    id=room.id,
                    name=room.name,
                    switch=room.switch,
                    port=room.port,
                    status=m.port_status(runtime, room.switch, room.port),
                    speed_mbps=m.speed_now(runtime, room.switch, room.port),
                    last_speed_mbps=iface.last_speed_mbps if iface is not None else None,
                    check=m.check(check) if check is not None else None,
                    terminal=m.classroom_terminal(terminals[room.id]),
                )
            )
        base = m.uplink(runtime, ref)
        switch_ids = {sid for sid, sw in runtime.config.switches.items() if sw.school == code}
        switch_ids.add(ref.uplink_switch)
        switch_ids.update(r.switch for r in ref.classrooms if r.switch is not None)
        topo = assess(state)
        return s.SchoolDetail(
            code=code,
            name=ref.name,
            kind=ref.kind,
            verdict=sc.verdict,
            connectivity=m.connectivity(runtime, topo, code),
            uplink=s.UplinkDetail(**base.model_dump(), checks=[m.check(r) for r in sc.uplink]),
            classrooms=classrooms,
            switches=[
                m.switch(runtime, state.devices[sid], topo)
                for sid in sorted(switch_ids)
                if sid in state.devices
            ],
        )

    return router
