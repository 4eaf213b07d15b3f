"""GET /api/v1/reports/monthly: the monthly report as JSON, CSV or a printable HTML page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from edumon.exporters import schemas as s
from edumon.exporters.api.availability import answer_report
from edumon.exporters.api.csv_report import csv_bytes_response
from edumon.exporters.api.mapping import local_time
from edumon.exporters.api.report_queries import (
    MonthQuery,
    SchoolsFilter,
    chosen_schools,
    report_month,
)
from edumon.reports import render
from edumon.reports.availability import Sources
from edumon.reports.monthly import monthly_report
from edumon.runtime import Runtime

ReportFormat = Annotated[
    Literal["json", "csv", "html"] | None,
    Query(alias="format", description="json (default), csv, or html (a printable page)"),
]


def _responses() -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The report as JSON, CSV (?format=csv, UTF-8 with a BOM) or a "
            "printable HTML page (?format=html)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        404: {"description": "No school with this code (or not one this token may see)"},
        503: {"description": "No lesson schedule, or the database is unavailable"},
    }


def reports_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    def at(seconds: float) -> datetime:
        return local_time(runtime, seconds)

    @router.get(
        "/reports/monthly",
        response_model=s.MonthlyReportOut,
        tags=["reports"],
        responses=_responses(),
    )
    async def reports_monthly(
        request: Request,
        month: MonthQuery = None,
        school: SchoolsFilter = None,
        fmt: ReportFormat = None,
    ) -> s.MonthlyReportOut | Response:
        """The monthly report per school and for the district: 在线率, 开机率, 使用率, uplink and
        classroom 达标率, outages with start, end and duration, and the worst classrooms.

        The same numbers as ``edumon report --month``. A month edumon did not monitor reads
        "无数据 no data" (rates null), never 0 %.
        """
        now = clock()
        src = Sources.of_runtime(runtime)
        year, mon = report_month(month, src.local_date(now))
        schools = chosen_schools(request, runtime, school)
        found = await answer_report(monthly_report(src, year, mon, now, schools=schools))
        body = render.monthly_report(found, at)
        suffix = "".join(f"{code}-" for code in sorted(set(school or ())))
        name = f"edumon-monthly-report-{suffix}{body.month}"
        if fmt == "csv":
            return csv_bytes_response(f"{name}.csv", render.report_csv(body))
        if fmt == "html":
            return HTMLResponse(render.report_html(body))
        return body

    return router
