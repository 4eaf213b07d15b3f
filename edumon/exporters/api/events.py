"""GET /api/v1/events and /compliance: stored state changes, and check results with reasons."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from edumon.domain.checks import CheckName, CheckResult, Verdict
from edumon.domain.models import EventKind
from edumon.errors import StoreError
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.lookup import school_or_404, store_unavailable
from edumon.exporters.api.per_school import SchoolsNow
from edumon.exporters.api.queries import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    TIME_HELP,
    Limit,
    Offset,
    SchoolFilter,
    invalid,
    page_of,
    parse_time,
)
from edumon.runtime import Runtime
from edumon.store.reads import EventPosition

MAX_EVENTS = MAX_LIMIT
MAX_EVENT_OFFSET = 10_000
"""Beyond this, ``offset`` would make the database step over that many rows: use ``cursor``."""


def encode_cursor(position: EventPosition) -> str:
    """An opaque cursor for the page after ``position``."""
    text = f"{position.at.astimezone(UTC).isoformat()}|{position.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> EventPosition:
    """The position a cursor of ``encode_cursor`` names; a 422 for anything else."""
    try:
        padded = value + "=" * (-len(value) % 4)
        at_text, id_text = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        at = datetime.fromisoformat(at_text)
        position = EventPosition(at, int(id_text))
        if at.tzinfo is None or position.id < 0:
            raise ValueError(value)
    except (ValueError, UnicodeError, binascii.Error):
        invalid(
            "cursor",
            value,
            "cursor 不是本接口给出的游标 / cursor is not one this API returned "
            "(pass next_cursor of the previous page unchanged)",
        )
    return position


def events_router(runtime: Runtime, views: SchoolsNow) -> APIRouter:
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
        limit: Annotated[
            int, Query(ge=1, le=MAX_EVENTS, description=f"Page size (1 to {MAX_EVENTS})")
        ] = DEFAULT_LIMIT,
        cursor: Annotated[
            str | None,
            Query(description="next_cursor of the previous page: the events older than it"),
        ] = None,
        offset: Annotated[
            int,
            Query(
                ge=0,
                le=MAX_EVENT_OFFSET,
                description=f"Events to skip (newest first), at most {MAX_EVENT_OFFSET}; "
                "page with cursor instead",
            ),
        ] = 0,
    ) -> s.EventPage:
        """State changes (link down/up, speed changes, reboots, reachability), newest first.

        Page with ``cursor``: each page's ``next_cursor`` names where the next (older) one
        starts; events that share a timestamp are never skipped nor repeated, and each page
        costs one index range whatever the number of stored events.
        """
        since_s = parse_time("since", since)
        until_s = parse_time("until", until)
        if since_s is not None and until_s is not None and since_s >= until_s:
            invalid("since", since, "since must be earlier than until")
        before = decode_cursor(cursor) if cursor is not None else None
        if before is not None and offset:
            invalid("offset", str(offset), "give either cursor or offset, not both")
        try:
            found = await runtime.store.event_page(
                school=school,
                kind=kind,
                device=device,
                since=since_s,
                until=until_s,
                before=before,
                limit=limit + 1,
                offset=offset,
            )
        except StoreError as exc:
            store_unavailable("listing events", exc)
        more = len(found) > limit
        found = found[:limit]
        return s.EventPage(
            events=[m.event(e.event) for e in found],
            limit=limit,
            offset=offset,
            next_cursor=encode_cursor(found[-1].position) if more else None,
        )

    @router.get("/compliance", response_model=s.Compliance, tags=["district"])
    async def compliance_results(
        verdict: Annotated[Verdict | None, Query(description="Only this verdict")] = None,
        school: SchoolFilter = None,
        check: Annotated[CheckName | None, Query(description="Only this check")] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> s.Compliance:
        """Check results against the targets in force, with their reasons, a page at a time.

        With ``school``, only that school is read; else each school's cached results.
        """
        if school is not None:
            school_or_404(runtime, school)
            one = views.school(school)
            results = [one] if one is not None else []
        else:
            results = views.all()

        def wanted(r: CheckResult) -> bool:
            return (verdict is None or r.verdict is verdict) and (check is None or r.check is check)

        # Whole schools before the page are skipped by their counts; only the page is mapped.
        total = 0
        page: list[CheckResult] = []
        for sc in results:
            here = sc.count(verdict, check)
            if here and total + here > offset and len(page) < limit:
                matching = [r for r in sc.compliance.results if wanted(r)]
                page.extend(matching[max(0, offset - total) :][: limit - len(page)])
            total += here
        return s.Compliance(
            targets=m.targets(runtime),
            results=[m.check(r) for r in page],
            page=page_of(limit, offset, total),
        )

    return router
