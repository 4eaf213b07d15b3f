"""Availability reports as CSV (UTF-8 with a BOM, for Excel): columns, rows and the response.

One header row, each column's Chinese name with its English name beside it ("在线率 online %");
rates as percentages with one decimal ("87.5"), empty where there is no figure, with the row's
data status ("无数据 no data") beside them (docs/availability.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request, Response

from edumon.exporters import schemas as s
from edumon.reports.render import FIGURE_COLUMNS, csv_text, figure_cells

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def csv_responses() -> dict[int | str, dict[str, Any]]:
    """OpenAPI for a report's other answers (a new dict per route: FastAPI keeps it)."""
    return {
        200: {
            "description": "The report as JSON, or as CSV (UTF-8 with a BOM, for Excel) with "
            "?format=csv or Accept: text/csv",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        404: {"description": "No school with this code (or not one this token may see)"},
        503: {"description": "No lesson schedule, or the database is unavailable"},
    }


def wants_csv(request: Request, fmt: str | None) -> bool:
    """Whether the client asked for CSV: ?format=, else the Accept header."""
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


_FIGURE_HEADERS = tuple(h for h, _ in FIGURE_COLUMNS)
_COUNT_HEADERS = (
    "在线分钟 online min",
    "监测分钟 monitored min",
    "上课分钟 lesson min",
    "使用节数 lessons used",
    "监测节数 lessons monitored",
    "节数 lessons",
)
DAILY_COLUMNS = (
    "级别 level",
    "学校代码 school",
    "学校 school name",
    "教室代码 classroom",
    "教室 classroom name",
    "终端 terminal",
    "日期 day",
    "上课日 school day",
    "开过机 switched on",
    *_FIGURE_HEADERS,
    *_COUNT_HEADERS,
)
MONTHLY_COLUMNS = (
    "级别 level",
    "学校代码 school",
    "学校 school name",
    "教室代码 classroom",
    "教室 classroom name",
    "终端 terminal",
    "月份 month",
    "上课天数 school days",
    "开机天数 days switched on",
    *_FIGURE_HEADERS,
    *_COUNT_HEADERS,
)


def _yes(value: bool | None) -> str:
    return "" if value is None else ("是 yes" if value else "否 no")


def _figures(f: s.Figures) -> list[object]:
    return [
        *figure_cells(f),
        f"{f.online_minutes:.1f}",
        f"{f.monitored_minutes:.1f}",
        f"{f.lesson_minutes:.1f}",
        f.lessons_used,
        f.lessons_monitored,
        f.lessons,
    ]


def daily_rows(body: s.DailyAvailability) -> Iterable[Sequence[object]]:
    """A daily report as CSV rows: the district, then each school and its classrooms."""
    day = body.day.isoformat()
    yield ["全区 district", "", "", "", "", "", day, "", "", *_figures(body.district)]
    for sc in body.schools:
        school = [sc.school, sc.school_name]
        yield ["学校 school", *school, "", "", "", day, _yes(sc.is_school_day), "", *_figures(sc)]
        for room in sc.classrooms:
            yield [
                "教室 classroom",
                *school,
                room.classroom,
                room.classroom_name,
                room.terminal,
                day,
                _yes(sc.is_school_day),
                _yes(room.switched_on),
                *_figures(room),
            ]


def monthly_rows(body: s.MonthlyAvailability) -> Iterable[Sequence[object]]:
    """A monthly report as CSV rows: the district, then each school and its classrooms."""
    month = body.month
    yield ["全区 district", "", "", "", "", "", month, "", "", *_figures(body.district)]
    for sc in body.schools:
        school = [sc.school, sc.school_name]
        yield ["学校 school", *school, "", "", "", month, sc.school_days, "", *_figures(sc)]
        for room in sc.classrooms:
            yield [
                "教室 classroom",
                *school,
                room.classroom,
                room.classroom_name,
                room.terminal,
                month,
                sc.school_days,
                room.days_switched_on,
                *_figures(room),
            ]


def csv_response(
    filename: str, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> Response:
    """The rows as a CSV download (UTF-8 with a BOM), under one header row."""
    return csv_bytes_response(filename, csv_text([columns, *rows]))


def csv_bytes_response(filename: str, body: bytes) -> Response:
    """A CSV body as a download named ``filename`` (ASCII: codes and local dates)."""
    return Response(
        body,
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
