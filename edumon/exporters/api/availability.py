"""GET /api/v1/availability/daily and /monthly: 在线率, 开机率 and 使用率 as JSON or CSV."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel

from edumon.errors import StoreError
from edumon.exporters import schemas as s
from edumon.exporters.api.csv_report import (
    DAILY_COLUMNS,
    MONTHLY_COLUMNS,
    csv_response,
    csv_responses,
    daily_rows,
    monthly_rows,
    wants_csv,
)
from edumon.exporters.api.lookup import store_unavailable
from edumon.exporters.api.mapping import local_time
from edumon.exporters.api.queries import Format
from edumon.exporters.api.report_queries import (
    DayQuery,
    MonthQuery,
    SchoolsFilter,
    chosen_schools,
    report_day,
    report_month,
)
from edumon.reports import render
from edumon.reports.availability import (
    Report,
    ReportError,
    Sources,
    daily_availability,
    monthly_availability,
)
from edumon.runtime import Runtime

Body = TypeVar("Body", bound=BaseModel)
R = TypeVar("R")


async def answer_report(making: Awaitable[R]) -> R:
    """A report, or 503 when it cannot be made (no schedule, the database down)."""
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
    school: list[str] | None,
    columns: Sequence[str],
    rows: Callable[[Body], Iterable[Sequence[object]]],
) -> Body | Response:
    """The report as JSON, or as a CSV download named for the schools and the local period."""
    if not wants_csv(request, fmt):
        return body
    suffix = "".join(f"{code}-" for code in sorted(set(school or ())))
    return csv_response(f"edumon-availability-{suffix}{name}.csv", columns, rows(body))


def availability_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    def at(seconds: float) -> datetime:
        return local_time(runtime, seconds)

    @router.get(
        "/availability/daily",
        response_model=s.DailyAvailability,
        tags=["availability"],
        responses=csv_responses(),
    )
    async def availability_daily(
        request: Request,
        day: DayQuery = None,
        school: SchoolsFilter = None,
        fmt: Format = None,
    ) -> s.DailyAvailability | Response:
        """在线率, 开机率 and 使用率 of one day, per classroom and per school.

        Rates count monitored lesson time only: a day edumon did not monitor is "no data"
        (``status`` no_data, ``coverage`` 0, rates null), never 0 %. Today counts only the
        lessons already started (one in progress up to now); ``complete`` is false.
        """
        now = clock()
        src = Sources.of_runtime(runtime)
        when = report_day(day, src.local_date(now))
        schools = chosen_schools(request, runtime, school)
        found: Report = await answer_report(daily_availability(src, when, now, schools=schools))
        body = render.daily(found, at)
        return _answer(request, fmt, body, when.isoformat(), school, DAILY_COLUMNS, daily_rows)

    @router.get(
        "/availability/monthly",
        response_model=s.MonthlyAvailability,
        tags=["availability"],
        responses=csv_responses(),
    )
    async def availability_monthly(
        request: Request,
        month: MonthQuery = None,
        school: SchoolsFilter = None,
        fmt: Format = None,
    ) -> s.MonthlyAvailability | Response:
        """在线率, 开机率 and 使用率 of one month, per classroom and per school.

        Summed over the month's days (a month's 在线率 is its online lesson time over its
        monitored lesson time, not a mean of daily rates); days that are over are read from
        the daily roll-up; the current month runs up to now. A month edumon did not monitor is
        "no data", never 0 %.
        """
        now = clock()
        src = Sources.of_runtime(runtime)
        year, mon = report_month(month, src.local_date(now))
        schools = chosen_schools(request, runtime, school)
        found = await answer_report(monthly_availability(src, year, mon, now, schools=schools))
        body = render.monthly(found, f"{year:04d}-{mon:02d}", at)
        return _answer(request, fmt, body, body.month, school, MONTHLY_COLUMNS, monthly_rows)

    return router
