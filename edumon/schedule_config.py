"""The [schedule] section of the configuration: timetables, 校历 terms, special days, overrides.

Example::

    [schedule]
    timezone = "Asia/Shanghai"                 # the default
    # Holiday arrangements (放假安排) beyond those shipped: one YYYY.toml per State Council
    # notice, re-read while running. Relative to this file's directory. See README, 工作日历.
    calendar_dir = "/etc/edumon/calendar"

    # Built in: "primary" (小学, 40-minute lessons from 08:20), "middle" (中学, 45-minute lessons
    # from 08:00) and "none" (no lessons). Define one with the same name to replace it.
    [schedule.timetables.senior]
    periods = [
      { start = "07:40", end = "08:25" }, { start = "08:35", end = "09:20" },
      { start = "19:00", end = "20:30" },    # 晚自习
    ]

    [schedule.defaults]                       # school kind -> timetable; unlisted kinds keep
    high = "senior"                           # the built-in choice (see DEFAULT_KIND_TIMETABLES)

    [[schedule.terms]]                        # 校历; outside the terms (寒暑假) no lessons
    name = "2026秋季学期"
    start = 2026-09-01
    end = 2027-01-22

    [[schedule.overrides]]                    # a school, or some of its classrooms
    school = "JY01"
    classrooms = ["JY01-701", "JY01-801"]     # omit for the whole school
    timetable = "middle"

    [[schedule.no_lesson_days]]               # wins over everything
    start = 2026-11-12
    end = 2026-11-13                          # omit for one day
    reason = "秋季运动会"
    schools = ["YZ01"]                        # omit for the whole district

    [[schedule.lesson_days]]                  # lessons whatever the calendar says
    start = 2026-12-19
    reason = "暴雪停课补课"
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from edumon.domain.schedule import DEFAULT_TIMEZONE, DayRule, Schedule, Term, Timetable

# Same rules as edumon.config's ids; repeated here because edumon.config will import this module.
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]

SchoolKind = Literal[
    "primary", "middle", "nine_year", "high", "vocational", "kindergarten", "other"
]

# The reference county's bells (docs/architecture.md). The 2021 Ministry notice on pupils' sleep
# puts the first lesson no earlier than 08:20 in primary and 08:00 in secondary schools; 大课间
# (a 30-minute break) after the second lesson; a long lunch break (午休) before the afternoon
# lessons.
BUILTIN_TIMETABLES: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "primary": (
            ("08:20", "09:00"),
            ("09:10", "09:50"),
            ("10:20", "11:00"),
            ("11:10", "11:50"),
            ("14:20", "15:00"),
            ("15:10", "15:50"),
            ("16:00", "16:40"),
        ),
        "middle": (
            ("08:00", "08:45"),
            ("08:55", "09:40"),
            ("10:10", "10:55"),
            ("11:05", "11:50"),
            ("14:00", "14:45"),
            ("14:55", "15:40"),
            ("15:50", "16:35"),
            ("16:45", "17:30"),
        ),
        # Kindergartens have no 40-minute lessons to be online for.
        "none": (),
    }
)

# A 九年一贯制 school follows the primary bells unless overridden: their later start (08:20) and
# earlier end (16:40) do not call a lower-grade room offline before or after its lessons (add
# an override for the grade 7-9 rooms).
DEFAULT_KIND_TIMETABLES: Mapping[SchoolKind, str] = MappingProxyType(
    {
        "primary": "primary",
        "middle": "middle",
        "nine_year": "primary",
        "high": "middle",
        "vocational": "middle",
        "kindergarten": "none",
        "other": "primary",
    }
)

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _clock(value: object) -> object:
    # TOML 1.0 local times need seconds ("08:00:00"); "08:00" as a string is what people write.
    if isinstance(value, str):
        match = _CLOCK.match(value.strip())
        if match is None:
            raise ValueError(f'"{value}" is not a time of day; write "HH:MM", e.g. "08:00"')
        return time(int(match[1]), int(match[2]))
    if isinstance(value, time):
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValueError(f'write a time of day as "HH:MM", not {value.isoformat()}')
        return value
    raise ValueError('write a time of day as "HH:MM", e.g. "08:00"')


def _calendar_date(value: object) -> object:
    # Refuse what lax parsing would accept by accident: 20260901 read as a Unix timestamp,
    # or a date-time whose time part would be silently dropped.
    if isinstance(value, datetime):
        raise ValueError(f"write a date without a time of day, e.g. {value.date().isoformat()}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError("write a date as YYYY-MM-DD, e.g. 2026-09-01")


ClockTime = Annotated[time, BeforeValidator(_clock)]
CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodConfig(_Strict):
    """One lesson: start and end as "HH:MM" local time."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ends_after_start(self) -> PeriodConfig:
        if self.end <= self.start:
            raise ValueError(f"end {self.end:%H:%M} must be after start {self.start:%H:%M}")
        return self


class TimetableConfig(_Strict):
    """A bell schedule: lessons in time order, not overlapping."""

    periods: list[PeriodConfig]

    @model_validator(mode="after")
    def _in_order(self) -> TimetableConfig:
        self.timetable("")  # raises ValueError naming the periods that overlap
        return self

    def timetable(self, name: str) -> Timetable:
        return Timetable.from_spans(name, ((p.start, p.end) for p in self.periods))


class TermConfig(_Strict):
    """A term (学期) of the 校历: first and last day of lessons."""

    name: str = Field(min_length=1)
    start: CalendarDate
    end: CalendarDate

    @model_validator(mode="after")
    def _ends_after_start(self) -> TermConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class DaysConfig(_Strict):
    """A day or a run of days (start to end, both included), for some schools or all."""

    start: CalendarDate
    end: CalendarDate | None = None
    reason: str = ""
    schools: list[Id] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ends_after_start(self) -> DaysConfig:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def rule(self) -> DayRule:
        return DayRule(self.start, self.end or self.start, self.reason, frozenset(self.schools))


class OverrideConfig(_Strict):
    """A school, or some of its classrooms, that follows another timetable than its kind's."""

    school: Id
    timetable: Id
    classrooms: list[Id] = Field(default_factory=list)


class ScheduleConfig(_Strict):
    """The [schedule] section; every key optional, the defaults fit the reference county."""

    timezone: str = DEFAULT_TIMEZONE
    calendar_dir: str | None = Field(default=None, min_length=1)
    # Merged onto the built-in ones, so validated even when left out.
    timetables: dict[Id, TimetableConfig] = Field(default_factory=dict, validate_default=True)
    defaults: dict[SchoolKind, Id] = Field(default_factory=dict, validate_default=True)
    terms: list[TermConfig] = Field(default_factory=list)
    no_lesson_days: list[DaysConfig] = Field(default_factory=list)
    lesson_days: list[DaysConfig] = Field(default_factory=list)
    overrides: list[OverrideConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r}; use an IANA name such as Asia/Shanghai"
            ) from None
        return v

    @field_validator("terms")
    @classmethod
    def _terms_in_order(cls, v: list[TermConfig]) -> list[TermConfig]:
        for i in range(1, len(v)):
            before, after = v[i - 1], v[i]
            if after.start <= before.end:
                raise ValueError(
                    f"terms[{i}] ({after.name}) starts on {after.start}, before terms[{i - 1}] "
                    f"({before.name}) ends on {before.end}; list terms in date order, "
                    "without overlaps"
                )
        return v

    @field_validator("timetables")
    @classmethod
    def _with_builtins(cls, v: dict[str, TimetableConfig]) -> dict[str, TimetableConfig]:
        builtins = {
            name: TimetableConfig(
                periods=[
                    PeriodConfig(start=time.fromisoformat(s), end=time.fromisoformat(e))
                    for s, e in spans
                ]
            )
            for name, spans in BUILTIN_TIMETABLES.items()
        }
        return {**builtins, **v}

    @field_validator("defaults")
    @classmethod
    def _with_default_kinds(cls, v: dict[SchoolKind, str]) -> dict[SchoolKind, str]:
        return {**DEFAULT_KIND_TIMETABLES, **v}

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleConfig:
        names = ", ".join(sorted(self.timetables))
        for kind, name in self.defaults.items():
            if name not in self.timetables:
                raise ValueError(f"defaults.{kind}: no timetable {name!r} (defined: {names})")
        seen: dict[tuple[str, str | None], int] = {}
        for i, o in enumerate(self.overrides):
            if o.timetable not in self.timetables:
                raise ValueError(
                    f"overrides[{i}].timetable: no timetable {o.timetable!r} (defined: {names})"
                )
            keys: list[tuple[str, str | None]] = [(o.school, c) for c in o.classrooms]
            for key in keys or [(o.school, None)]:
                if key in seen:
                    what = o.school if key[1] is None else f"{o.school} {key[1]}"
                    raise ValueError(
                        f"overrides[{i}]: {what} is already overridden by overrides[{seen[key]}]"
                    )
                seen[key] = i
        for i, on in enumerate(self.lesson_days):
            for j, off in enumerate(self.no_lesson_days):
                if _clash(on, off):
                    raise ValueError(
                        f"lesson_days[{i}] and no_lesson_days[{j}] give the same day to the same "
                        "school; keep one of them"
                    )
        self.schedule()  # so that schedule() cannot fail on a validated section
        return self

    def calendar_path(self, config_file: Path | None) -> Path | None:
        """The calendar_dir as a path; a relative one is taken from the config file's directory.

        Args:
            config_file: the configuration file the section was read from, if any.
        """
        if self.calendar_dir is None:
            return None
        path = Path(self.calendar_dir).expanduser()
        if not path.is_absolute() and config_file is not None:
            path = config_file.parent / path
        return path

    def schedule(self) -> Schedule:
        """The domain Schedule this section describes (validation has already checked it)."""
        overrides: dict[tuple[str, str | None], str] = {}
        for o in self.overrides:
            rooms: list[str | None] = list(o.classrooms)
            for classroom in rooms or [None]:
                overrides[(o.school, classroom)] = o.timetable
        return Schedule(
            timetables={name: t.timetable(name) for name, t in self.timetables.items()},
            kind_timetables={str(kind): name for kind, name in self.defaults.items()},
            overrides=overrides,
            terms=tuple(Term(t.name, t.start, t.end) for t in self.terms),
            no_lesson_days=tuple(d.rule() for d in self.no_lesson_days),
            lesson_days=tuple(d.rule() for d in self.lesson_days),
            timezone=ZoneInfo(self.timezone),
        )

    def unknown_references(self, classrooms_by_school: Mapping[str, Collection[str]]) -> list[str]:
        """Problems with school and classroom ids this section names, one line each.

        Args:
            classrooms_by_school: classroom ids by school code, from the rest of the config.

        Returns:
            Lines like ``schedule.overrides[0].school: no school with code YZ09``; empty if none.
        """
        problems: list[str] = []
        for i, o in enumerate(self.overrides):
            key = f"schedule.overrides[{i}]"
            if o.school not in classrooms_by_school:
                problems.append(f"{key}.school: no school with code {o.school}")
                continue
            for c in o.classrooms:
                if c not in classrooms_by_school[o.school]:
                    problems.append(f"{key}.classrooms: school {o.school} has no classroom {c}")
        for section, days in (
            ("lesson_days", self.lesson_days),
            ("no_lesson_days", self.no_lesson_days),
        ):
            for i, d in enumerate(days):
                for s in d.schools:
                    if s not in classrooms_by_school:
                        problems.append(f"schedule.{section}[{i}].schools: no school with code {s}")
        return problems


def _clash(a: DaysConfig, b: DaysConfig) -> bool:
    a_end, b_end = a.end or a.start, b.end or b.start
    if a_end < b.start or b_end < a.start:
        return False
    return not a.schools or not b.schools or bool(set(a.schools) & set(b.schools))
