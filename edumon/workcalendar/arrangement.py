"""One year's holiday arrangement (放假安排) as a TOML file: parsing and the rules it must follow.

The State Council's General Office publishes each year's arrangement as a notice,
国务院办公厅关于XXXX年部分节假日安排的通知, in November or December of the year before. Its seven
items (一、元旦 … 七、国庆节) each give the days off (放假调休) and the Saturdays or Sundays
worked instead (上班). One file holds one notice::

    year = 2026
    title = "国务院办公厅关于2026年部分节假日安排的通知"
    published = 2025-11-04

    [[holidays]]
    name = "元旦"
    start = 2026-01-01
    end = 2026-01-03
    makeup_workdays = [2026-01-04]      # 1月4日（周日）上班
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edumon.errors import ConfigError
from edumon.schedule_config import CalendarDate

YEAR_EDGE_DAYS = 7
"""How far into the neighbouring years a file's dates may reach: a 元旦 holiday can start on
30 December, and its make-up day fall on the 29th, of the year before (2019's notice did so)."""

_WEEKDAYS = (
    ("周一", "Monday"),
    ("周二", "Tuesday"),
    ("周三", "Wednesday"),
    ("周四", "Thursday"),
    ("周五", "Friday"),
)


class ArrangementError(ConfigError):
    """An arrangement file cannot be used; ``problems`` has one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class HolidaySpan:
    """One item of the notice: days off from ``start`` to ``end`` (both included), and the
    Saturdays or Sundays worked instead."""

    name: str
    start: date
    end: date
    makeup_workdays: tuple[date, ...] = ()

    def days(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Arrangement:
    """A validated arrangement for ``year``.

    Attributes:
        year: the year the notice arranges.
        title: the notice's title (provenance).
        published: the date the notice was issued.
        holidays: its items in file order.
        where: the file it was read from, for messages.
        document: the notice's document number (发文字号), if given.
        url: where the notice was published, if given.
    """

    year: int
    title: str
    published: date
    holidays: tuple[HolidaySpan, ...]
    where: str = ""
    document: str = ""
    url: str = ""

    def entries(self) -> Iterator[tuple[date, bool, str]]:
        """(date, working day?, holiday name) for every day the notice names."""
        for span in self.holidays:
            for day in span.days():
                yield day, False, span.name
            for day in span.makeup_workdays:
                yield day, True, span.name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _HolidayTable(_Strict):
    name: str = Field(min_length=1)
    start: CalendarDate
    end: CalendarDate | None = None
    makeup_workdays: list[CalendarDate] = Field(default_factory=list)


class _ArrangementFile(_Strict):
    year: int = Field(ge=2000, le=2100)
    title: str = Field(min_length=1)
    published: CalendarDate
    document: str = ""
    url: str = ""
    holidays: list[_HolidayTable]


Loc = tuple[str | int, ...]


def parse_arrangement(text: str, *, where: str, year: int | None = None) -> Arrangement:
    """Validate one arrangement file's text.

    Args:
        text: the TOML text.
        where: the file name, for messages.
        year: the year the file name says, checked against its ``year`` key.

    Raises:
        ArrangementError: one line per problem, each ``FILE:LINE: KEY: what is wrong``.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ArrangementError([f"{where}: not valid TOML: {exc}"]) from exc
    try:
        parsed = _ArrangementFile.model_validate(raw)
    except ValidationError as exc:
        raise ArrangementError(
            [_format(text, where, _loc(e["loc"]), _message(e)) for e in exc.errors()]
        ) from exc
    problems = [_format(text, where, loc, message) for loc, message in _check(parsed, year)]
    if problems:
        raise ArrangementError(problems)
    return Arrangement(
        year=parsed.year,
        title=parsed.title,
        published=parsed.published,
        holidays=tuple(
            HolidaySpan(h.name, h.start, h.end or h.start, tuple(h.makeup_workdays))
            for h in parsed.holidays
        ),
        where=where,
        document=parsed.document,
        url=parsed.url,
    )


def _check(parsed: _ArrangementFile, file_year: int | None) -> Iterator[tuple[Loc, str]]:
    """The rules pydantic's types cannot say: dates in the year, no day twice, and so on.

    Messages are Chinese first, then English: the person fixing the file is typing a notice.
    """
    year = parsed.year
    if file_year is not None and year != file_year:
        yield (
            ("year",),
            (
                f"文件名是 {file_year}.toml，但 year = {year}；文件以通知安排的年份命名 / "
                f"the file is named {file_year}.toml but says year = {year}; name each file "
                "after the year its notice arranges"
            ),
        )
        return  # every date would be judged against the wrong year
    if not parsed.holidays:
        yield (
            ("holidays",),
            (
                "没有列出放假安排；把通知的每一项（一、元旦 … 七、国庆节）写成一个 "
                "[[holidays]] 表 / no holidays listed; write each item of the notice as a "
                "[[holidays]] table"
            ),
        )
    first = date(year, 1, 1) - timedelta(days=YEAR_EDGE_DAYS)
    last = date(year, 12, 31) + timedelta(days=YEAR_EDGE_DAYS)

    def outside(day: date) -> str | None:
        if first <= day <= last:
            return None
        return (
            f"{day} 不在{year}年内（最多跨年 {YEAR_EDGE_DAYS} 天，用于跨年的元旦）/ "
            f"{day} is not in {year}; a {year}.toml file lists the days of {year} (reaching "
            f"at most {YEAR_EDGE_DAYS} days into the neighbouring years, for 元旦 across the "
            "year end)"
        )

    off: dict[date, int] = {}
    for i, h in enumerate(parsed.holidays):
        end = h.end or h.start
        for key, day in (("start", h.start), ("end", end)):
            problem = outside(day)
            if problem is not None:
                yield ("holidays", i, key), problem
        if end < h.start:
            yield (
                ("holidays", i, "end"),
                (f"结束日期早于开始日期 / end {end} is before start {h.start}"),
            )
            continue
        days = (end - h.start).days + 1
        if days > 32:
            yield (
                ("holidays", i, "end"),
                (
                    f"{h.name}共 {days} 天，请对照通知核对日期 / {h.name} runs {days} days "
                    f"({h.start} to {end}); check the dates against the notice"
                ),
            )
            continue
        day = h.start
        while day <= end:
            other = off.get(day)
            if other is not None and other != i:
                name = parsed.holidays[other].name
                yield (
                    ("holidays", i, "start"),
                    (
                        f"与 holidays[{other}]（{name}）在 {day} 重叠，每天只列一次 / {h.name} "
                        f"({h.start} to {end}) overlaps holidays[{other}] ({name}) on {day}; list "
                        "each day once (a joint holiday such as 国庆节、中秋节 is one table)"
                    ),
                )
                break
            off[day] = i
            day += timedelta(days=1)
    worked: dict[date, int] = {}
    for i, h in enumerate(parsed.holidays):
        loc: Loc = ("holidays", i, "makeup_workdays")
        for day in h.makeup_workdays:
            problem = outside(day)
            if problem is not None:
                yield loc, problem
            if day in worked:
                yield loc, f"{day} 重复列出 / {day} is listed twice as a make-up working day"
            worked[day] = i
            if day.weekday() < 5:
                zh, en = _WEEKDAYS[day.weekday()]
                yield (
                    loc,
                    (
                        f"{day} 是{zh}，本来就是工作日；调休上班日是周六或周日 / {day} is a {en}, "
                        "already a working day; a 调休 make-up working day is a Saturday or Sunday"
                    ),
                )
            if day in off:
                name = parsed.holidays[off[day]].name
                yield (
                    loc,
                    (
                        f"{day} 既是放假日（{name}）又是调休上班日 / {day} is both a holiday "
                        f"({name}) and a make-up working day; it can be only one"
                    ),
                )


# -- messages that name the file, line and key -----------------------------------------------


def _loc(raw: tuple[int | str, ...]) -> Loc:
    return tuple(p for p in raw if not (isinstance(p, str) and p.startswith("function-")))


def _message(err: object) -> str:
    assert isinstance(err, dict)
    if err["type"] == "extra_forbidden":
        return (
            "未知的键 / unknown key; a file has year, title, published, document, url and "
            "[[holidays]] tables of name, start, end, makeup_workdays"
        )
    if err["type"] == "missing":
        return "缺少必填的键 / required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _key(loc: Loc) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "(top level)"


_HOLIDAYS_HEADER = re.compile(r"^\s*\[\[\s*holidays\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[")


def _line_of(text: str, loc: Loc) -> int | None:
    """The 1-based line of the key at ``loc`` in a file of ``[[holidays]]`` tables, if found."""
    lines = text.splitlines()
    tables = [n for n, line in enumerate(lines) if _TABLE_HEADER.match(line)]
    holidays = [n for n in tables if _HOLIDAYS_HEADER.match(lines[n])]
    start, stop = 0, tables[0] if tables else len(lines)
    key = next((p for p in loc if isinstance(p, str)), None)
    if len(loc) >= 2 and loc[0] == "holidays" and isinstance(loc[1], int):
        if loc[1] >= len(holidays):
            return None  # written as an inline array: no table to point at
        start = holidays[loc[1]]
        stop = next((n for n in tables if n > start), len(lines))
        key = next((p for p in loc[2:] if isinstance(p, str)), None)
        if key is None:
            return start + 1
    elif key == "holidays" and holidays:
        return holidays[0] + 1
    if key is None:
        return None
    pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=")
    found = next((n for n in range(start, stop) if pattern.match(lines[n])), None)
    if found is not None:
        return found + 1
    return start + 1 if start else None


def _format(text: str, where: str, loc: Loc, message: str) -> str:
    line = _line_of(text, loc)
    return f"{where}:{line}: {_key(loc)}: {message}" if line else f"{where}: {_key(loc)}: {message}"
