"""The status page's routes: the district grid at /, a school, a switch; HTML, in Chinese."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from edumon import __version__
from edumon.domain.topology import assess
from edumon.errors import StoreError
from edumon.exporters.api.access import principal_of, visible_schools
from edumon.exporters.api.per_school import SchoolNow, SchoolsNow
from edumon.exporters.web import model
from edumon.exporters.web.labels import CLASSROOM_STATES, SCHOOL_STATES
from edumon.quality_view import data_quality
from edumon.runtime import Runtime
from edumon.views import schedule_timezone

log = logging.getLogger(__name__)

REFRESH_SECONDS = 20
"""How often an open page reloads its content (a wall screen stays current)."""
EVENTS_SHOWN = 20
"""Recent events on a school's page."""


class _Tiles:
    """Each school's tile, kept while its ``SchoolNow`` is the same object.

    ``SchoolsNow`` recomputes a school only when it changed; so does this: a wall screen
    refreshing the district page re-counts only the schools whose state moved.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._kept: dict[str, tuple[SchoolNow, model.SchoolTile]] = {}

    def of(self, sc: SchoolNow) -> model.SchoolTile:
        kept = self._kept.get(sc.ref.code)
        if kept is not None and kept[0] is sc:
            return kept[1]
        tile = model.school_tile(self._runtime, sc)
        self._kept[sc.ref.code] = (sc, tile)
        return tile


def status_router(
    runtime: Runtime,
    views: SchoolsNow,
    templates: Jinja2Templates,
    clock: Callable[[], float],
    assets: str,
) -> APIRouter:
    """The pages; mounted at / by ``install_status_page``. None is in the OpenAPI document.

    Args:
        runtime: the daemon's live parts; read only.
        views: the API's per-school results.
        templates: the page templates.
        clock: the current time in Unix seconds.
        assets: the path the CSS, script and icon are served under.
    """
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    tiles = _Tiles(runtime)
    state = runtime.state
    inventory = state.inventory

    def render(
        request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        now = clock()
        zone = datetime.fromtimestamp(now, schedule_timezone(runtime)).strftime("UTC%z")
        base = {
            "district_name": runtime.config.district.name,
            "generated": model.moment(runtime, now),
            "zone": f"{zone[:-2]}:{zone[-2:]}",
            "refresh": REFRESH_SECONDS,
            "assets": assets,
            "version": __version__,
            "school_states": SCHOOL_STATES,
            "classroom_states": CLASSROOM_STATES,
            # Who is logged in (with tokens configured): the header names them and offers 退出.
            "user": principal_of(request),
        }
        response = templates.TemplateResponse(
            request, template, {**base, **context}, status_code=status
        )
        # The page is the state now: a browser or proxy must not show an old one.
        response.headers["Cache-Control"] = "no-store"
        return response

    def not_found(request: Request, what: str, code: str) -> HTMLResponse:
        return render(request, "not_found.html", {"what": what, "code": code}, status=404)

    @router.get("/")
    async def district_page(request: Request) -> HTMLResponse:
        visible = visible_schools(request)
        now = clock()
        found = [tiles.of(sc) for sc in views.all(now) if visible is None or sc.ref.code in visible]
        page = model.district(runtime.config.district.name, found)
        return render(request, "district.html", {"page": page})

    @router.get("/schools/{code}")
    async def school_page(request: Request, code: str) -> HTMLResponse:
        visible = visible_schools(request)
        if visible is not None and code not in visible:
            return not_found(request, "学校 / school", code)  # as an unknown one: no hint
        sc = views.school(code)
        if sc is None:
            return not_found(request, "学校 / school", code)
        events: list[model.EventRow] | None
        try:
            stored = await runtime.store.events(school=code, limit=EVENTS_SHOWN)
            events = [model.event_row(runtime, e) for e in stored]
        except StoreError as exc:
            log.warning("status page: reading events of school=%s failed: %s", code, exc)
            events = None
        switches = []
        for sid in sc.switches:
            dev = state.devices.get(sid)
            view = sc.topology.switches.get(sid)
            if dev is None or view is None:
                continue
            owner = dev.school or inventory.switch_school.get(sid)
            may_open = visible is None or (owner is not None and owner in visible)
            switches.append(model.switch_row(runtime, dev, view.condition, view.reason, may_open))
        link = sc.link
        page = model.SchoolPage(
            tile=tiles.of(sc),
            connectivity=link.connectivity.label,
            classrooms=model.classroom_rows(runtime, sc),
            switches=switches,
            events=events,
            warnings=data_quality(runtime, code),
        )
        return render(request, "school.html", {"page": page})

    @router.get("/switches/{switch_id}")
    async def switch_page(request: Request, switch_id: str) -> HTMLResponse:
        visible = visible_schools(request)
        dev = state.devices.get(switch_id)
        code = None
        if dev is not None:
            code = dev.school or inventory.switch_school.get(switch_id)
        # A district switch carries several schools' ports: the district role sees it only.
        if dev is None or (visible is not None and (code is None or code not in visible)):
            return not_found(request, "交换机 / switch", switch_id)
        ref = inventory.schools.get(code) if code is not None else None
        # Reads only this switch and those above it (as the API's switch routes do).
        view = assess(state, schools=(), devices=(switch_id,)).switches[switch_id]
        page = model.switch_page(
            runtime, dev, view.condition, view.reason, school_visible=ref is not None
        )
        return render(request, "switch.html", {"page": page})

    return router
