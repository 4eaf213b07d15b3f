"""Timestamps in the database: Unix seconds in the code, aware UTC datetimes at the boundary.

Every conversion between the two lives here, and so does the one text form SQLite stores them
in (it has no timestamp type): ``UtcDateTime`` writes it through SQLAlchemy, the heartbeat fast
path writes it directly (``sqlite_text``) and the availability query takes it apart by position
(``epoch_microseconds``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, ColumnElement, DateTime, Dialect, cast, extract, func
from sqlalchemy.types import TypeDecorator

SQLITE_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLite holds a timestamp: naive UTC, microseconds always written (SQLAlchemy's
DATETIME form there). Fixed width, so text order is time order and the parts have fixed
positions."""
_SQLITE_SECONDS_CHARS = 19  # "YYYY-MM-DD HH:MM:SS"
_SQLITE_FRACTION_START = 21  # 1-based, after the "."
_SQLITE_FRACTION_CHARS = 6


def to_db(seconds: float) -> datetime:
    """Unix seconds as the aware UTC datetime a ``UtcDateTime`` column takes."""
    return datetime.fromtimestamp(seconds, UTC)


def from_db(value: datetime) -> float:
    """A ``UtcDateTime`` column's value as Unix seconds."""
    return value.timestamp()


def sqlite_text(seconds: float) -> str:
    """Unix seconds as SQLite's stored text, for inserts that bypass SQLAlchemy's types."""
    return f"{to_db(seconds).replace(tzinfo=None):{SQLITE_TEXT_FORMAT}}"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``TIMESTAMP WITH TIME ZONE``; SQLite has no such type, so the value is
    stored as naive UTC text (fixed-width, so text order is time order) and given its UTC zone
    back when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC timestamp column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def epoch_microseconds(at: ColumnElement[datetime], dialect: str) -> ColumnElement[int]:
    """A ``UtcDateTime`` column as integer Unix microseconds, computed by the database.

    Availability reads a day of a county's heartbeats (~230k rows) at once; plain integers
    skip building a datetime per row, and dividing by 10**6 gives exactly the float that
    ``datetime.timestamp()`` would.
    """
    if dialect == "postgresql":
        # extract() returns an exact numeric (PostgreSQL >= 14) or a float8 with
        # microsecond precision for this century; round() absorbs the latter's error.
        return cast(func.round(extract("epoch", at) * 1_000_000), BigInteger)
    # The fraction is cut off before strftime, which rounds it to milliseconds and so
    # would turn :59.999999 into the next second.
    whole = func.substr(at, 1, _SQLITE_SECONDS_CHARS)
    seconds = cast(func.strftime("%s", whole), BigInteger)
    fraction = func.substr(at, _SQLITE_FRACTION_START, _SQLITE_FRACTION_CHARS)
    return seconds * 1_000_000 + cast(fraction, BigInteger)
