"""Schemathesis hooks for tests/exporters/test_schema.py (loaded through SCHEMATHESIS_HOOKS).

The OpenAPI document names two string formats JSON Schema cannot spell out (edumon's times and
event cursors); these teach schemathesis what a valid one is, so that its positive cases are
valid and its negative cases are not. Rules a schema cannot express either are kept out of
the positive cases: since before until, cursor or offset, and a report's day or month not after
today (a period that has not begun is a 422, "尚未开始").
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import schemathesis
from hypothesis import strategies as st

from edumon.exporters.api.events import CURSOR_FORMAT, MAX_EVENT_ID, encode_cursor
from edumon.exporters.api.queries import LATEST, TIME_FORMAT, parse_time
from edumon.store.reads import EventPosition

_SECONDS = st.integers(0, int(LATEST) - 86_400)
_OFFSETS = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _iso(seconds: int, zone: timezone) -> str:
    return datetime.fromtimestamp(seconds, zone).isoformat()


_TIMES = st.one_of(
    _SECONDS.map(str),
    st.builds(_iso, _SECONDS, _OFFSETS),
    st.builds(_iso, _SECONDS, st.just(UTC)).map(lambda t: t.replace("+00:00", "Z")),
)
_CURSORS = st.builds(
    lambda at, id_: encode_cursor(EventPosition(datetime.fromtimestamp(at, UTC), id_)),
    _SECONDS,
    st.integers(0, MAX_EVENT_ID),
)

schemathesis.openapi.format(TIME_FORMAT, _TIMES)
schemathesis.openapi.format(CURSOR_FORMAT, _CURSORS)


def _seconds(value: Any) -> float | None:
    try:
        return parse_time("t", value) if isinstance(value, str) else None
    except Exception:  # any rejection: not a valid time, so no rule between two to keep
        return None


def _after_today(query: dict[str, Any]) -> bool:
    """A day or month after the district's today (yesterday's, to be safe about midnight)."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)
    day, month = query.get("day"), query.get("month")
    try:
        if isinstance(day, str) and date.fromisoformat(day) > today:
            return True
        if isinstance(month, str) and len(month) == 7 and month > f"{today:%Y-%m}":
            return True
    except ValueError:  # not a date: the schema's own business
        return False
    return False


@schemathesis.hook
def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    if not query:
        return True
    if _after_today(query):
        return False
    since, until = _seconds(query.get("since")), _seconds(query.get("until"))
    if since is not None and until is not None and since >= until:
        return False
    return not (query.get("cursor") is not None and query.get("offset") not in (None, 0, "0"))
