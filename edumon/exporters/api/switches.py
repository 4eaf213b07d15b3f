"""GET /api/v1/switches and /switches/{id}/interfaces: reachability, polls and ports."""

from __future__ import annotations

from fastapi import APIRouter

from edumon.domain.topology import assess
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.lookup import switch_or_404
from edumon.runtime import Runtime


def switches_router(runtime: Runtime) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()
    state = runtime.state

    @router.get("/switches", response_model=s.SwitchList, tags=["switches"])
    async def switches() -> s.SwitchList:
        """Every switch: reachability, uptime, reboots, last error and poll statistics."""
        topo = assess(state)
        return s.SwitchList(
            switches=[m.switch(runtime, state.devices[sid], topo) for sid in sorted(state.devices)]
        )

    @router.get(
        "/switches/{switch_id}/interfaces",
        response_model=s.SwitchInterfaces,
        tags=["switches"],
        responses={404: {"description": "No switch with this id"}},
    )
    async def interfaces(switch_id: str) -> s.SwitchInterfaces:
        """One switch and its ports: status, speed, alias, rates, counters, last change."""
        dev = switch_or_404(runtime, switch_id)
        ports = sorted(dev.interfaces.values(), key=lambda i: (i.if_index, i.name))
        return s.SwitchInterfaces(
            switch=m.switch(runtime, dev),
            interfaces=[m.interface(runtime, dev, i) for i in ports],
        )

    return router
