"""Availability reports as CSV (UTF-8 with a BOM, for Excel): columns, rows and the response."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request, Response

from edumon.exporters import schemas as s

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def csv_responses() -> dict[int | str, dict[str, Any]]:
    """OpenAPI for a report's other answers (a new dict per route: FastAPI keeps it)."""
    return {
        200: {
            "description": "The report as JSON, or as CSV (UTF-8 with a BOM, for Excel) with "
            "?format=csv or Accept: text/csv",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        404: {"description": "No school with this code"},
        503: {"description": "No lesson schedule, or the database is unavailable"},
    }


def wants_csv(request: Request, fmt: str | None) -> bool:
    """Whether the client asked for CSV: ?format=, else the Accept header."""
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


_FIGURE_COLUMNS = tuple(s.Figures.model_fields)
DAILY_COLUMNS = (
    "level",
    "school",
    "school_name",
    "classroom",
    "classroom_name",
    "terminal",
    "day",
    "is_school_day",
    "day_reason",
    "switched_on",
    *_FIGURE_COLUMNS,
)
MONTHLY_COLUMNS = (
    "level",
    "school",
    "school_name",
    "classroom",
    "classroom_name",
    "terminal",
    "month",
    "school_days",
    "days_switched_on",
    *_FIGURE_COLUMNS,
)


def daily_rows(body: s.DailyAvailability) -> Iterable[dict[str, Any]]:
    """A daily report as CSV rows: the district, then each school and its classrooms."""
    day = body.day.isoformat()
    yield {"level": "district", "day": day, **body.district.model_dump()}
    for sc in body.schools:
        school = {"school": sc.school, "school_name": sc.school_name, "day": day}
        day_info = {"is_school_day": sc.is_school_day, "day_reason": sc.day_reason}
        yield {"level": "school", **school, **day_info, **_only_figures(sc)}
        for room in sc.classrooms:
            yield {
                "level": "classroom",
                **school,
                **day_info,
                "classroom": room.classroom,
                "classroom_name": room.classroom_name,
                "terminal": room.terminal,
                "switched_on": room.switched_on,
                **_only_figures(room),
            }


def monthly_rows(body: s.MonthlyAvailability) -> Iterable[dict[str, Any]]:
    """A monthly report as CSV rows: the district, then each school and its classrooms."""
    yield {"level": "district", "month": body.month, **body.district.model_dump()}
    for sc in body.schools:
        school = {"school": sc.school, "school_name": sc.school_name, "month": body.month}
        yield {"level": "school", **school, "school_days": sc.school_days, **_only_figures(sc)}
        for room in sc.classrooms:
            yield {
                "level": "classroom",
                **school,
                "school_days": sc.school_days,
                "classroom": room.classroom,
                "classroom_name": room.classroom_name,
                "terminal": room.terminal,
                "days_switched_on": room.days_switched_on,
                **_only_figures(room),
            }


def _only_figures(model: s.Figures) -> dict[str, Any]:
    return {name: getattr(model, name) for name in _FIGURE_COLUMNS}


def _csv_cell(value: object) -> str:
    # Empty for "no figure" (a rate on a day without lessons), never "None"; floats in full
    # (repr) so that the CSV carries exactly the JSON's numbers.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_response(filename: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Response:
    """The rows as a CSV download (UTF-8 with a BOM)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    # The BOM makes Excel (which assumes the ANSI code page, GBK in China, otherwise) read
    # UTF-8, so that school and classroom names show as written.
    return Response(
        out.getvalue().encode("utf-8-sig"),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
