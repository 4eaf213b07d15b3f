"""GET /api/v1/availability/daily and /monthly: 在线率, 开机率 and 使用率 as JSON or CSV."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from edumon.errors import StoreError
from edumon.exporters import schemas as s
from edumon.exporters.api import mapping as m
from edumon.exporters.api.csv_report import (
    DAILY_COLUMNS,
    MONTHLY_COLUMNS,
    csv_response,
    csv_responses,
    daily_rows,
    monthly_rows,
    wants_csv,
)
from edumon.exporters.api.lookup import school_or_404, store_unavailable
from edumon.exporters.api.queries import Format, SchoolFilter, invalid, parse_day, parse_month
from edumon.reports.availability import (
    Report,
    ReportError,
    daily_availability,
    monthly_availability,
)
from edumon.runtime import Runtime
from edumon.views import local_date

Body = TypeVar("Body", bound=BaseModel)


async def _report(making: Awaitable[Report]) -> Report:
    try:
        return await making
    except ReportError as exc:
        raise HTTPException(503, str(exc)) from exc
    except StoreError as exc:
        store_unavailable("availability report", exc)


def _answer(
    request: Request,
    fmt: str | None,
    body: Body,
    name: str,
    school: str | None,
    columns: Sequence[str],
    rows: Callable[[Body], Iterable[dict[str, Any]]],
) -> Body | Response:
    """The report as JSON, or as a CSV download named for the school and the period."""
    if not wants_csv(request, fmt):
        return body
    suffix = f"{school}-" if school is not None else ""
    return csv_response(f"edumon-availability-{suffix}{name}.csv", columns, rows(body))


def availability_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    @router.get(
        "/availability/daily",
        response_model=s.DailyAvailability,
        tags=["availability"],
        responses=csv_responses(),
    )
    async def availability_daily(
        request: Request,
        day: Annotated[
            str | None, Query(description="Local date YYYY-MM-DD; today when omitted")
        ] = None,
        school: SchoolFilter = None,
        fmt: Format = None,
    ) -> s.DailyAvailability | Response:
        """在线率, 开机率 and 使用率 of one school day, per classroom and per school.

        Rates are null on a day without lessons (weekend, holiday, 寒暑假). Today's figures are
        live (``complete`` false): lessons still to come count in the denominators.
        """
        now = clock()
        today = local_date(runtime, now)
        when = parse_day(day) if day is not None else today
        if when > today:
            invalid("day", day, f"{when.isoformat()} has not begun; there are no figures yet")
        if school is not None:
            school_or_404(runtime, school)
        found = await _report(daily_availability(runtime, when, now, school=school))
        body = m.daily(found)
        return _answer(request, fmt, body, when.isoformat(), school, DAILY_COLUMNS, daily_rows)

    @router.get(
        "/availability/monthly",
        response_model=s.MonthlyAvailability,
        tags=["availability"],
        responses=csv_responses(),
    )
    async def availability_monthly(
        request: Request,
        month: Annotated[
            str | None, Query(description="Local month YYYY-MM; this month when omitted")
        ] = None,
        school: SchoolFilter = None,
        fmt: Format = None,
    ) -> s.MonthlyAvailability | Response:
        """在线率, 开机率 and 使用率 of one month, per classroom and per school.

        Summed over the month's school days (a month's 在线率 is its online lesson time over its
        lesson time, not a mean of daily rates); the current month runs up to today.
        """
        now = clock()
        today = local_date(runtime, now)
        year, mon = parse_month(month) if month is not None else (today.year, today.month)
        if (year, mon) > (today.year, today.month):
            invalid("month", month, f"{month} has not begun; there are no figures yet")
        if school is not None:
            school_or_404(runtime, school)
        found = await _report(monthly_availability(runtime, year, mon, now, school=school))
        body = m.monthly(found, f"{year:04d}-{mon:02d}")
        return _answer(request, fmt, body, body.month, school, MONTHLY_COLUMNS, monthly_rows)

    return router
