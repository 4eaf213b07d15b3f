"""GET /api/v1/summary: the district at a glance."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request

from edumon.domain.checks import CheckName, Verdict
from edumon.domain.models import EventKind
from edumon.domain.topology import Connectivity
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import schools_or_404, switch_visible
from edumon.exporters.api.per_school import SchoolsNow
from edumon.exporters.api.queries import Schools, many
from edumon.runtime import Runtime


def district_router(runtime: Runtime, views: SchoolsNow, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()
    state = runtime.state

    @router.get(
        "/summary",
        response_model=s.Summary,
        tags=["district"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def summary(request: Request, school: Schools = None) -> s.Summary:
        """The district (or the schools named) at a glance: targets, compliance counts,
        switches, terminals, outages and events.

        Assembled from each school's cached results (recomputed only for schools that changed).
        ``events`` counts the events of the whole district since this process started.
        """
        now = clock()
        visible = visible_schools(request)
        codes = schools_or_404(runtime, many("school", school), visible)
        if codes is None:
            results = views.all(now)
            devices = list(state.devices.values())
        else:
            results = [sc for c in codes if (sc := views.school(c, now)) is not None]
            ids = {d for sc in results for d in sc.switches}
            if visible is not None and school is None:
                # A school's view: its own switches and those its page lists.
                ids = {d for d in ids if switch_visible(runtime, views, d, visible)}
            devices = [state.devices[d] for d in sorted(ids) if d in state.devices]
        reachable = [d.reachable for d in devices]
        district = runtime.config.district
        tracker = runtime.outages
        wanted = {sc.ref.code for sc in results}
        by_kind = {k.value: runtime.collector.stats.events_total.get(k.value, 0) for k in EventKind}
        links = [sc.link.connectivity for sc in results]
        tallies = [sc.terminals for sc in results]  # each school's, counted when it last changed
        return s.Summary(
            district=s.District(code=district.code, name=district.name),
            targets=m.targets(runtime),
            schools=m.verdict_counts([sc.compliance.verdict for sc in results]),
            classrooms=s.VerdictCounts(
                total=sum(sc.count(None, CheckName.CLASSROOM_SPEED) for sc in results),
                passing=sum(sc.count(Verdict.PASS, CheckName.CLASSROOM_SPEED) for sc in results),
                fail=sum(sc.count(Verdict.FAIL, CheckName.CLASSROOM_SPEED) for sc in results),
                unknown=sum(sc.count(Verdict.UNKNOWN, CheckName.CLASSROOM_SPEED) for sc in results),
            ),
            switches=s.SwitchCounts(
                total=len(reachable),
                up=reachable.count(True),
                down=reachable.count(False),
                never_polled=reachable.count(None),
            ),
            connectivity={c.value: links.count(c) for c in Connectivity},
            outages=s.OutageCounts(
                schools=sum(1 for o in tracker.schools.values() if o.school in wanted)
                if tracker is not None
                else 0,
                classrooms=sum(1 for o in tracker.classrooms.values() if o.school in wanted)
                if tracker is not None
                else 0,
            ),
            terminals=s.TerminalSummary(
                total=sum(t.total for t in tallies),
                online=sum(t.online for t in tallies),
                offline_in_lesson=sum(t.offline_in_lesson for t in tallies),
                off_schedule=sum(t.offline - t.offline_in_lesson for t in tallies),
                unknown=sum(t.unknown for t in tallies),
            ),
            events=s.EventCounts(total=sum(by_kind.values()), by_kind=by_kind),
            calendar=m.calendar_status(runtime, now),
            generated_at=m.local_time(runtime, now),
        )

    return router
