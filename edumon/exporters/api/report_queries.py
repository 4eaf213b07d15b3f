"""Query parameters of the availability and report routes: dates, months and schools.

Every out-of-range value answers 422 with a reason (never 500): dates before 2000 or after
today, months likewise, NUL bytes anywhere. A school outside the request's visible schools
answers 404 exactly like an unknown one.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import HTTPException, Query, Request

from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import API_PREFIX
from edumon.exporters.api.queries import invalid
from edumon.runtime import Runtime

EARLIEST = date(2000, 1, 1)
"""Reports start here: earlier dates are refused (422), not reported as "no data"."""

DAY_PATTERN = r"^(2\d{3}|[3-9]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
MONTH_PATTERN = r"^(2\d{3}|[3-9]\d{3})-(0[1-9]|1[0-2])$"
CODE_PATTERN = r"^[^\x00]+$"

# The patterns are in the OpenAPI description only: the parsers below enforce them with a
# reason in Chinese and English (FastAPI's own pattern check would answer in English alone).
DayQuery = Annotated[
    str | None,
    Query(
        description="Local date YYYY-MM-DD, from 2000-01-01 to today; today when omitted",
        json_schema_extra={"pattern": DAY_PATTERN},
    ),
]
MonthQuery = Annotated[
    str | None,
    Query(
        description="Local month YYYY-MM, from 2000-01 to this month; this month when omitted",
        json_schema_extra={"pattern": MONTH_PATTERN},
    ),
]

SchoolsFilter = Annotated[
    list[str] | None,
    Query(
        alias="school",
        description="Only these schools (codes; repeat the parameter for several)",
        json_schema_extra={"items": {"type": "string", "pattern": CODE_PATTERN}},
    ),
]

_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def _clean(name: str, value: str) -> str:
    if "\x00" in value:
        invalid(name, value, f"{name} 含有 NUL 字符 / {name} contains a NUL byte")
    return value.strip()


def report_day(value: str | None, today: date) -> date:
    """``?day=YYYY-MM-DD`` (today when omitted), from 2000-01-01 to today.

    Raises:
        RequestValidationError: 422 with the reason.
    """
    if value is None:
        return today
    text = _clean("day", value)
    try:
        if _DAY.fullmatch(text) is None:
            raise ValueError(text)
        when = date.fromisoformat(text)
    except ValueError:
        invalid(
            "day",
            value,
            f"日期格式应为 YYYY-MM-DD，例如 2026-09-07 / day must be a date YYYY-MM-DD, "
            f"e.g. 2026-09-07; got {value!r}",
        )
    if when < EARLIEST:
        invalid(
            "day",
            value,
            f"不支持 {EARLIEST} 之前的日期 / days before {EARLIEST} are not supported",
        )
    if when > today:
        invalid(
            "day",
            value,
            f"{when} 尚未开始，还没有数据 / {when} has not begun; there are no figures yet",
        )
    return when


def report_month(value: str | None, today: date) -> tuple[int, int]:
    """``?month=YYYY-MM`` (this month when omitted), from 2000-01 to this month.

    Raises:
        RequestValidationError: 422 with the reason.
    """
    if value is None:
        return today.year, today.month
    text = _clean("month", value)
    match = _MONTH.fullmatch(text)
    if match is None or not 1 <= int(match[2]) <= 12:
        invalid(
            "month",
            value,
            f"月份格式应为 YYYY-MM，例如 2026-09 / month must be YYYY-MM, e.g. 2026-09; "
            f"got {value!r}",
        )
    year, month = int(match[1]), int(match[2])
    if (year, month) < (EARLIEST.year, EARLIEST.month):
        invalid(
            "month",
            value,
            f"不支持 {EARLIEST:%Y-%m} 之前的月份 / months before {EARLIEST:%Y-%m} are not "
            "supported",
        )
    if (year, month) > (today.year, today.month):
        invalid(
            "month",
            value,
            f"{text} 尚未开始，还没有数据 / {text} has not begun; there are no figures yet",
        )
    return year, month


def chosen_schools(
    request: Request, runtime: Runtime, school: list[str] | None
) -> frozenset[str] | None:
    """The schools a report covers: the ``school`` filter within the visible schools.

    None means every school. A code that is unknown, or outside what the request may see,
    answers 404 (the same answer for both).

    Raises:
        HTTPException: 404.
        RequestValidationError: 422, a NUL byte.
    """
    visible = visible_schools(request)
    if not school:
        return visible
    codes = frozenset(_clean("school", code) for code in school)
    for code in sorted(codes):
        if code not in runtime.state.inventory.schools or (
            visible is not None and code not in visible
        ):
            raise HTTPException(
                404,
                f"没有代码为 {code!r} 的学校 / no school with code {code!r}; "
                f"GET {API_PREFIX}/schools lists them",
            )
    return codes
