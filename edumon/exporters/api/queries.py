"""Query parameters the routes parse themselves: dates, months and times, with 422s that say why."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, NoReturn

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from edumon.exporters import schemas as s

TIME_HELP = "ISO-8601 with a UTC offset (2024-09-01T08:00:00+08:00, or Z for UTC) or Unix seconds"
TIME_FORMAT = "edumon-time"
"""The OpenAPI ``format`` of a time parameter: TIME_HELP, from 1970 to the year 9000."""


def time_query(description: str) -> Any:
    """A time query parameter (``since``, ``until``): its OpenAPI description and format."""
    return Query(
        description=f"{description}: {TIME_HELP}; from 1970 to the year 9000",
        json_schema_extra={"format": TIME_FORMAT},
    )


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


EARLIEST = 0.0
"""1970-01-01T00:00:00Z: no event, sample or heartbeat is older."""
LATEST = datetime(9000, 1, 1, tzinfo=UTC).timestamp()
"""Far enough for any query, and far enough from year 9999 that a time shown in any zone
(or stored as a database timestamp) cannot overflow."""


def parse_time(name: str, value: str | None) -> float | None:
    """A time given as Unix seconds or as ISO-8601 with a UTC offset, in Unix seconds.

    Only times from 1970 to the year 9000 are taken: beyond them a 422 says so, rather than a
    conversion overflowing further down. An empty value (a form's empty field) is no time.
    """
    if value is None or not value.strip():
        return None  # an empty form field: not given
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            invalid(
                name,
                value,
                f"{name} 必须是有限的秒数 / {name} must be a finite number of Unix seconds",
            )
        return _in_range(name, value, seconds)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        invalid(name, value, f"{name} 时间格式无效 / {name} must be {TIME_HELP}; got {value!r}")
    if when.tzinfo is None:
        # A bare local time is ambiguous (the server may run in UTC, the reader in +08:00).
        invalid(
            name,
            value,
            f"{name} 缺少时区 / {name} has no UTC offset; add one, e.g. {text}+08:00 for Beijing "
            f"time or {text}Z",
        )
    try:
        seconds = when.timestamp()
    except (OverflowError, ValueError):
        seconds = math.inf
    return _in_range(name, value, seconds)


def _in_range(name: str, value: str, seconds: float) -> float:
    if not EARLIEST <= seconds <= LATEST:
        invalid(
            name,
            value,
            f"{name} 超出范围（1970 年至 9000 年）/ {name} is out of range: "
            "give a time from 1970 to the year 9000",
        )
    return seconds


SchoolFilter = Annotated[str | None, Query(description="Only this school (code)")]
"""``?school=CODE``: only this school's rows (the route answers 404 for an unknown code)."""

Schools = Annotated[
    list[str] | None,
    Query(
        alias="school",
        description="Only these schools (codes); repeat for several: school=A&school=B. "
        "An unknown code answers 404",
    ),
]
"""``?school=A&school=B``: only these schools' rows (404 for an unknown or hidden code)."""

MAX_VALUES = 100
"""At most this many values of one multi-valued filter (a longer list is a 422)."""


def many(name: str, values: list[str] | None) -> list[str] | None:
    """A multi-valued filter's values, each once in the order given; None when not given."""
    if not values:
        return None
    if len(values) > MAX_VALUES:
        invalid(
            name,
            str(len(values)),
            f"{name} 取值过多 / at most {MAX_VALUES} values of {name}, not {len(values)}",
        )
    return list(dict.fromkeys(values))


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
