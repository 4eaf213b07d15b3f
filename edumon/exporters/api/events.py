"""GET /api/v1/events and /compliance: stored state changes, and check results with reasons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from edumon.domain.checks import CheckName, Verdict
from edumon.domain.models import EventKind
from edumon.errors import StoreError
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.lookup import compliance, school_or_404, store_unavailable
from edumon.exporters.api.queries import TIME_HELP, SchoolFilter, invalid, parse_time
from edumon.runtime import Runtime

MAX_EVENTS = 1000


def events_router(runtime: Runtime) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    @router.get(
        "/events",
        response_model=s.EventPage,
        tags=["events"],
        responses={503: {"description": "The database is unavailable"}},
    )
    async def events(
        school: SchoolFilter = None,
        kind: Annotated[EventKind | None, Query(description="Only this kind of event")] = None,
        device: Annotated[str | None, Query(description="Only this switch (id)")] = None,
        since: Annotated[str | None, Query(description=f"At or after: {TIME_HELP}")] = None,
        until: Annotated[str | None, Query(description=f"Before: {TIME_HELP}")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS, description="Page size")] = 100,
        offset: Annotated[int, Query(ge=0, description="Events to skip (newest first)")] = 0,
    ) -> s.EventPage:
        """State changes (link down/up, speed changes, reboots, reachability), newest first."""
        since_s = parse_time("since", since)
        until_s = parse_time("until", until)
        if since_s is not None and until_s is not None and since_s >= until_s:
            invalid("since", since, "since must be earlier than until")
        try:
            found = await runtime.store.events(
                school=school,
                kind=kind,
                device=device,
                since=since_s,
                until=until_s,
                limit=limit,
                offset=offset,
            )
        except StoreError as exc:
            store_unavailable("listing events", exc)
        return s.EventPage(events=[m.event(e) for e in found], limit=limit, offset=offset)

    @router.get("/compliance", response_model=s.Compliance, tags=["district"])
    async def compliance_results(
        verdict: Annotated[Verdict | None, Query(description="Only this verdict")] = None,
        school: SchoolFilter = None,
        check: Annotated[CheckName | None, Query(description="Only this check")] = None,
    ) -> s.Compliance:
        """Every check result against the targets in force, with its reason."""
        if school is not None:
            school_or_404(runtime, school)
        out = [
            m.check(r)
            for sc in compliance(runtime).values()
            for r in sc.results
            if (verdict is None or r.verdict is verdict)
            and (school is None or r.school == school)
            and (check is None or r.check is check)
        ]
        return s.Compliance(targets=m.targets(runtime), results=out)

    return router
