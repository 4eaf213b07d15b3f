"""Query parameters the routes parse themselves: dates, months and times, with 422s that say why."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Annotated, Literal, NoReturn

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from edumon.exporters import schemas as s

TIME_HELP = "ISO-8601 with a UTC offset (2024-09-01T08:00:00+08:00, or Z for UTC) or Unix seconds"

Format = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv for a CSV download (or send Accept: text/csv)"),
]


def invalid(name: str, value: str | None, message: str) -> NoReturn:
    """Reject a query parameter in FastAPI's own 422 format, with a message that says why."""
    raise RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "value_error", "input": value}]
    )


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_day(value: str) -> date:
    text = value.strip()
    try:
        if _DAY.fullmatch(text) is None:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        invalid("day", value, f"day must be a date YYYY-MM-DD, e.g. 2026-09-07; got {value!r}")


def parse_month(value: str) -> tuple[int, int]:
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        invalid("month", value, f"month must be YYYY-MM, e.g. 2026-09; got {value!r}")
    return int(match[1]), int(match[2])


def parse_time(name: str, value: str | None) -> float | None:
    """A time given as Unix seconds or as ISO-8601 with a UTC offset, in Unix seconds."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            invalid(name, value, f"{name} must be a finite number of Unix seconds")
        return seconds
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        invalid(name, value, f"{name} must be {TIME_HELP}; got {value!r}")
    if when.tzinfo is None:
        # A bare local time is ambiguous (the server may run in UTC, the reader in +08:00).
        invalid(
            name,
            value,
            f"{name} has no UTC offset; add one, e.g. {text}+08:00 for Beijing time or {text}Z",
        )
    return when.timestamp()


SchoolFilter = Annotated[str | None, Query(description="Only this school (code)")]
"""``?school=CODE``: only this school's rows (the route answers 404 for an unknown code)."""

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Rows per page (1 to {MAX_LIMIT}; default {DEFAULT_LIMIT})",
    ),
]
"""``?limit=N``: the page size of a list."""
Offset = Annotated[
    int,
    Query(ge=0, le=MAX_OFFSET, description="Rows to skip: the previous page's next_offset"),
]
"""``?offset=N``: where a page of an in-memory list begins."""


def page_of(limit: int, offset: int, total: int) -> s.Page:
    """The paging fields of a page of ``total`` rows starting at ``offset``."""
    following = offset + limit
    return s.Page(
        limit=limit,
        offset=offset,
        total=total,
        next_offset=following if following < total else None,
    )
