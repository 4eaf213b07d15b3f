"""GET /api/v1/events and /compliance: stored state changes, and check results with reasons."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from edumon.domain.checks import CheckName, CheckResult, Verdict
from edumon.domain.event_text import DEVICE_KINDS, DeviceKind
from edumon.domain.models import EventKind
from edumon.errors import StoreError
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import (
    API_PREFIX,
    MAX_SHOWN,
    Visible,
    classroom_school,
    not_found,
    school_or_404,
    schools_or_404,
    store_unavailable,
    switch_or_404,
    terminal_schools,
    visible_codes,
)
from edumon.exporters.api.per_school import SchoolNow, SchoolsNow
from edumon.exporters.api.queries import (
    DEFAULT_LIMIT,
    EARLIEST,
    LATEST,
    MAX_LIMIT,
    Limit,
    Offset,
    Schools,
    invalid,
    many,
    page_of,
    parse_time,
    time_query,
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


CURSOR_FORMAT = "edumon-cursor"
"""The OpenAPI ``format`` of ``cursor``: a ``page.next_cursor`` this API returned."""

MAX_EVENT_ID = 2**63 - 1
"""Event ids are 64-bit integers; a cursor beyond that is not one this API gave."""


def decode_cursor(value: str) -> EventPosition:
    """The position a cursor of ``encode_cursor`` names; a 422 for anything else."""
    try:
        padded = value + "=" * (-len(value) % 4)
        at_text, id_text = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
        at = datetime.fromisoformat(at_text)
        position = EventPosition(at, int(id_text))
        if at.tzinfo is None or not 0 <= position.id <= MAX_EVENT_ID:
            raise ValueError(value)
        if not EARLIEST <= at.timestamp() <= LATEST:
            raise ValueError(value)
    except (ValueError, UnicodeError, binascii.Error, OverflowError):
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

    def device_filter(
        kind: DeviceKind, device: str, visible: Visible
    ) -> tuple[str | None, list[str] | None]:
        """The device_id and the schools that ``device_kind`` and ``device`` select; a 404
        for a device that is not known (or not visible)."""
        if kind == "switch":
            switch_or_404(runtime, device, visible, views)
            return device, None
        if kind == "school":
            school_or_404(runtime, device, visible)
            return None, [device]
        if kind == "collector":
            # The collector's own events belong to no school: the district's to see.
            if visible is not None:
                not_found("没有此采集服务", f"no collector {device[:MAX_SHOWN]!r}")
            return device, None
        if kind == "classroom":
            ref = classroom_school(runtime, device)
            if ref is None or (visible is not None and ref.code not in visible):
                not_found(
                    f"没有编号为 {device[:MAX_SHOWN]!r} 的教室",
                    f"no classroom with id {device[:MAX_SHOWN]!r}; "
                    f"GET {API_PREFIX}/schools/{{code}} lists them",
                )
            return device, [ref.code]
        schools = visible_codes(terminal_schools(runtime, device), visible)
        if not schools:
            not_found(
                f"没有编号为 {device[:MAX_SHOWN]!r} 的终端",
                f"no terminal with id {device[:MAX_SHOWN]!r}; "
                f"GET {API_PREFIX}/terminals lists them",
            )
        return device, schools

    @router.get(
        "/events",
        response_model=s.EventPage,
        tags=["events"],
        responses={
            404: {"model": s.Error, "description": "No such school or device"},
            503: {"model": s.Error, "description": "The database is unavailable"},
        },
    )
    async def events(
        request: Request,
        school: Schools = None,
        kind: Annotated[
            list[EventKind] | None,
            Query(description="Only these kinds of event; repeat for several: kind=a&kind=b"),
        ] = None,
        device_kind: Annotated[
            DeviceKind | None,
            Query(
                description="Only events about this kind of device: switch, terminal, school "
                "or classroom (with device: which one; alone: all of that kind)"
            ),
        ] = None,
        device: Annotated[
            str | None,
            Query(
                description="Only events about this device (its id); device_kind says which "
                "kind of id it is, switch when not given"
            ),
        ] = None,
        since: Annotated[str | None, time_query("At or after")] = None,
        until: Annotated[str | None, time_query("Before")] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_EVENTS, description=f"Page size (1 to {MAX_EVENTS})")
        ] = DEFAULT_LIMIT,
        cursor: Annotated[
            str | None,
            Query(
                description="page.next_cursor of the previous page: the events older than it",
                json_schema_extra={"format": CURSOR_FORMAT},
            ),
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
        """State changes (link down/up, speed changes, reboots, reachability, terminals,
        outages), newest first, each with the kind of device it is about and its message in
        Chinese and English.

        Page with ``cursor``: each page's ``page.next_cursor`` names where the next (older)
        one starts; events that share a timestamp are never skipped nor repeated, and each
        page costs one index range whatever the number of stored events. ``page.total``
        counts every event the filters match.
        """
        visible = visible_schools(request)
        schools = schools_or_404(runtime, many("school", school), visible)
        since_s = parse_time("since", since)
        until_s = parse_time("until", until)
        if since_s is not None and until_s is not None and since_s >= until_s:
            invalid("since", since, "since 必须早于 until / since must be earlier than until")
        before = decode_cursor(cursor) if cursor else None  # empty: the first page
        if before is not None and offset:
            invalid(
                "offset",
                str(offset),
                "cursor 与 offset 只能给一个 / give either cursor or offset, not both",
            )
        kinds: frozenset[EventKind] | None = frozenset(kind) if kind else None
        device_id: str | None = None
        if device is not None:
            # A switch and a terminal may share an id: the kind says which is meant.
            device_id, device_schools = device_filter(device_kind or "switch", device, visible)
            if device_schools is not None:
                schools = [c for c in device_schools if schools is None or c in schools]
        if device is not None or device_kind is not None:
            of_kind = DEVICE_KINDS[device_kind or "switch"]
            kinds = of_kind if kinds is None else kinds & of_kind
        if (kinds is not None and not kinds) or (schools is not None and not schools):
            # Filters that exclude each other: nothing matches.
            return s.EventPage(
                events=[],
                page=s.EventPageInfo(
                    limit=limit, offset=offset, total=0, next_offset=None, next_cursor=None
                ),
            )
        filters: dict[str, Any] = {
            "school": schools,
            "kind": sorted(kinds) if kinds is not None else None,
            "device": device_id,
            "since": since_s,
            "until": until_s,
        }
        try:
            found = await runtime.store.event_page(
                **filters, before=before, limit=limit + 1, offset=offset
            )
            total = await runtime.store.event_count(**filters)
        except StoreError as exc:
            store_unavailable("listing events", exc)
        more = len(found) > limit
        found = found[:limit]
        return s.EventPage(
            events=[m.event(runtime, e.event) for e in found],
            page=s.EventPageInfo(
                limit=limit,
                offset=offset,
                total=total,
                next_offset=offset + limit if more and before is None else None,
                next_cursor=encode_cursor(found[-1].position) if more else None,
            ),
        )

    @router.get(
        "/compliance",
        response_model=s.Compliance,
        tags=["district"],
        responses={404: {"model": s.Error, "description": "No school with this code"}},
    )
    async def compliance_results(
        request: Request,
        verdict: Annotated[
            list[Verdict] | None,
            Query(description="Only these verdicts; repeat for several"),
        ] = None,
        school: Schools = None,
        check: Annotated[
            list[CheckName] | None,
            Query(description="Only these checks; repeat for several"),
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> s.Compliance:
        """Check results against the targets in force, with their reasons, a page at a time.

        With ``school``, only those schools are read; else each school's cached results.
        """
        codes = schools_or_404(runtime, many("school", school), visible_schools(request))
        if codes is not None:
            results = [sc for c in codes if (sc := views.school(c)) is not None]
        else:
            results = views.all()
        verdicts = set(verdict) if verdict else None
        checks = set(check) if check else None

        def wanted(r: CheckResult) -> bool:
            return (verdicts is None or r.verdict in verdicts) and (
                checks is None or r.check in checks
            )

        def count(sc: SchoolNow) -> int:
            return sum(
                sc.count(v, c)
                for v in (verdicts if verdicts is not None else [None])
                for c in (checks if checks is not None else [None])
            )

        # Whole schools before the page are skipped by their counts; only the page is mapped.
        total = 0
        page: list[CheckResult] = []
        for sc in results:
            here = count(sc)
            if here and total + here > offset and len(page) < limit:
                matching = [r for r in sc.compliance.results if wanted(r)]
                page.extend(matching[max(0, offset - total) :][: limit - len(page)])
            total += here
        return s.Compliance(
            targets=m.targets(runtime),
            results=[m.check(runtime, r) for r in page],
            page=page_of(limit, offset, total),
        )

    return router
