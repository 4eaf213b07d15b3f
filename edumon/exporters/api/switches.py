"""GET /api/v1/switches and /switches/{id}/interfaces: reachability, polls and ports."""

from __future__ import annotations

from fastapi import APIRouter, Request

from edumon.domain.topology import assess
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import (
    port_school,
    schools_or_404,
    switch_or_404,
    switch_visible,
)
from edumon.exporters.api.per_school import SchoolsNow
from edumon.exporters.api.queries import DEFAULT_LIMIT, Limit, Offset, Schools, many, page_of
from edumon.runtime import Runtime


def switches_router(runtime: Runtime, views: SchoolsNow) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()
    state = runtime.state
    ordered: list[str] = []

    def switch_ids() -> list[str]:
        # Sorted once; again only if a switch appears that the configuration did not name.
        if len(ordered) != len(state.devices):
            ordered[:] = sorted(state.devices)
        return ordered

    @router.get(
        "/switches",
        response_model=s.SwitchList,
        tags=["switches"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def switches(
        request: Request,
        school: Schools = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> s.SwitchList:
        """Switches by id, a page at a time: reachability, uptime, reboots, polls, condition.

        With ``school``, those schools' switches (as their pages list them, each once).
        """
        visible = visible_schools(request)
        codes = many("school", school)
        if codes is not None:
            schools_or_404(runtime, codes, visible)
            seen: dict[str, None] = {}
            for code in codes:
                one = views.school(code)
                for d in one.switches if one is not None else ():
                    if d in state.devices:
                        seen[d] = None
            ids = list(seen)
        elif visible is not None:
            ids = [d for d in switch_ids() if switch_visible(runtime, views, d, visible)]
        else:
            ids = switch_ids()
        page = ids[offset : offset + limit]
        # Only the page's switches, their parents and their schools' links are assessed.
        topo = assess(state, schools=(), devices=page)
        return s.SwitchList(
            switches=[m.switch(runtime, state.devices[sid], topo) for sid in page],
            page=page_of(limit, offset, len(ids)),
        )

    @router.get(
        "/switches/{switch_id}/interfaces",
        response_model=s.SwitchInterfaces,
        tags=["switches"],
        responses={404: {"model": s.Error, "description": "No switch with this id"}},
    )
    async def interfaces(request: Request, switch_id: str) -> s.SwitchInterfaces:
        """One switch and its ports: status, speed, alias, rates, counters, last change."""
        visible = visible_schools(request)
        dev = switch_or_404(runtime, switch_id, visible, views)
        ports = sorted(dev.interfaces.values(), key=lambda i: (i.if_index, i.name))
        if visible is not None:
            # A district switch a school may see (its uplink hangs off it) serves other
            # schools too: only its own ports are shown.
            ports = [i for i in ports if port_school(runtime, dev, i.name) in visible]
        topo = assess(state, schools=(), devices=(switch_id,))
        return s.SwitchInterfaces(
            switch=m.switch(runtime, dev, topo),
            interfaces=[m.interface(runtime, dev, i) for i in ports],
        )

    return router
