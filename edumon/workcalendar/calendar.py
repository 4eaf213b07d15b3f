"""China's working calendar from every source edumon has, most trusted first, re-read as it runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

import chinese_calendar  # type: ignore[import-untyped]

from edumon.domain.schedule import (
    DEFAULT_TIMEZONE,
    CalendarCoverage,
    CalendarSource,
    Workday,
)
from edumon.workcalendar.arrangement import Arrangement
from edumon.workcalendar.files import SHIPPED_DIR, ArrangementReader, DirectoryScan
from edumon.workcalendar.statutory import StatutoryHolidays

log = logging.getLogger(__name__)

RELOAD_SECONDS = 600.0
"""How often the arrangement directories are looked at again (a stat per file; a changed file
is parsed again). A file dropped into calendar_dir is in force within this time."""


@dataclass(frozen=True, slots=True)
class _Layer:
    """The arrangements of one source, merged: what they say per date, and the years they cover."""

    source: CalendarSource
    days: Mapping[date, tuple[bool, str]]
    years: Mapping[int, Arrangement]

    @classmethod
    def of(cls, source: CalendarSource, arrangements: Mapping[int, Arrangement]) -> _Layer:
        days: dict[date, tuple[bool, str]] = {}
        own: list[tuple[date, bool, str]] = []
        for arrangement in arrangements.values():
            for day, workday, name in arrangement.entries():
                if day.year == arrangement.year:
                    own.append((day, workday, name))
                else:  # 元旦 reaching into December: the file of that December's year wins
                    days.setdefault(day, (workday, name))
        days.update((day, (workday, name)) for day, workday, name in own)
        return cls(source, MappingProxyType(days), MappingProxyType(dict(arrangements)))


@dataclass(frozen=True, slots=True)
class _Snapshot:
    layers: tuple[_Layer, ...]
    problems: tuple[str, ...]
    rejected: tuple[str, ...]


class ChineseWorkingCalendar:
    """China's national working calendar (法定节假日 and 调休), from these sources in turn:

    1. an arrangement file in the district's ``[schedule] calendar_dir`` (``YYYY.toml``);
    2. an arrangement file shipped with edumon (``edumon/workcalendar/arrangements``);
    3. the data of the installed ``chinese-calendar`` package;
    4. without an arrangement: the statutory holidays of 《全国年节及纪念日放假办法》 and
       weekends off, 调休 make-up working days unknown (``CalendarSource.STATUTORY``);
    5. for a year even those cannot be computed for: Monday to Friday.

    The directories are read at construction and looked at again every ``reload_seconds``,
    so a new year's file needs no restart. A file that cannot be used is logged and left out;
    the sources below it answer instead.

    Implements ``edumon.domain.schedule.NationalCalendar``.
    """

    def __init__(
        self,
        calendar_dir: Path | None = None,
        *,
        timezone: tzinfo | None = None,
        clock: Callable[[], float] = time.time,
        config_file: Path | None = None,
        reload_seconds: float = RELOAD_SECONDS,
        shipped_dir: Path = SHIPPED_DIR,
    ) -> None:
        """Read the arrangement files and log, once, what is missing.

        Args:
            calendar_dir: the district's directory of arrangement files; None: none.
            timezone: the schedule's zone, in which "today" is judged (default Beijing time).
            clock: the current time in Unix seconds.
            config_file: the configuration file, named in the advice on a missing year.
            reload_seconds: how often to look at the directories again.
            shipped_dir: the shipped arrangements (tests point it elsewhere).
        """
        self._dir = calendar_dir
        self._timezone = timezone if timezone is not None else ZoneInfo(DEFAULT_TIMEZONE)
        self._clock = clock
        self._config_file = config_file
        self._reload_seconds = reload_seconds
        self._shipped_dir = shipped_dir
        self._reader = ArrangementReader()
        self._statutory = StatutoryHolidays()
        # The package raises NotImplementedError outside the years of its table.
        self._package_years = frozenset(day.year for day in chinese_calendar.holidays)
        self._lock = threading.Lock()
        self._snapshot = _Snapshot((), (), ())
        self._loaded_at = 0.0
        self._warned_on: date | None = None
        self.reload()
        self.coverage(self.today())  # at start: says what is missing, if anything

    @property
    def calendar_dir(self) -> Path | None:
        return self._dir

    def today(self) -> date:
        """The local date now, in the schedule's time zone."""
        return datetime.fromtimestamp(self._clock(), self._timezone).date()

    def reload(self) -> None:
        """Read the directories again now (changed files only are parsed again)."""
        with self._lock:
            self._reload_locked()

    def workday(self, day: date) -> Workday:
        """See ``edumon.domain.schedule.WorkingCalendar.workday``."""
        for layer in self._current().layers:
            hit = layer.days.get(day)
            if hit is not None:
                return Workday(day, hit[0], layer.source, hit[1])
            if day.year in layer.years:
                return Workday(day, day.weekday() < 5, layer.source)
        if day.year in self._package_years:
            workday: bool = chinese_calendar.is_workday(day)
            _, name = chinese_calendar.get_holiday_detail(day)
            holiday = chinese_calendar.Holiday(name).chinese if name else ""
            return Workday(day, workday, CalendarSource.CHINESE_CALENDAR, holiday)
        if not self._statutory.computable(day.year):
            return Workday(day, day.weekday() < 5, CalendarSource.WEEKDAYS)
        name = self._statutory.name(day)
        if name is not None:
            return Workday(day, False, CalendarSource.STATUTORY, name)
        return Workday(day, day.weekday() < 5, CalendarSource.STATUTORY)

    def coverage(self, today: date) -> CalendarCoverage:
        """See ``edumon.domain.schedule.NationalCalendar.coverage``.

        Logs the advice at WARNING the first time it is asked on each date that needs it:
        at start and then once a day, for as long as the arrangement is missing.
        """
        snapshot = self._current()
        years: dict[int, CalendarSource] = dict.fromkeys(
            self._package_years, CalendarSource.CHINESE_CALENDAR
        )
        files: dict[int, str] = {}
        for layer in reversed(snapshot.layers):  # the most trusted last, so that it wins
            for year, arrangement in layer.years.items():
                years[year] = layer.source
                files[year] = arrangement.where
        coverage = CalendarCoverage(today, years, files, snapshot.problems, snapshot.rejected)
        missing = coverage.missing_year
        if missing is None:
            return coverage
        coverage = replace(coverage, advice=self.advice(missing))
        if self._warned_on != today:
            self._warned_on = today
            log.warning("%s", coverage.advice)
        return coverage

    def advice(self, year: int) -> str:
        """What to do while ``year`` has no arrangement: Chinese first, then English."""
        minutes = max(1, round(self._reload_seconds / 60))
        notice = f"国务院办公厅关于{year}年部分节假日安排的通知"
        config = str(self._config_file) if self._config_file is not None else "<配置文件>"
        zh = (
            f"工作日历：{year}年的放假安排（{notice}）尚未提供。元旦、春节等法定节假日已按"
            "《全国年节及纪念日放假办法》推算，但调休上班的周六、周日未知，会被当作休息日。"
        )
        en = (
            f"Working calendar: no holiday arrangement for {year}. Statutory holidays are "
            "computed; 调休 make-up working days are unknown and count as days off."
        )
        if self._dir is not None:
            path = self._dir / f"{year}.toml"
            zh += (
                f"通知发布后，请按 README“工作日历”一节的格式写成 {path}，"
                f"运行 edumon check-config {config} 校验；{minutes} 分钟内自动生效，无需重启。"
            )
            en += (
                f" When the notice is published, write it as {path} (format: README, "
                f"'Working calendar'), check it with `edumon check-config {config}`; it is "
                f"read within {minutes} minutes, no restart needed."
            )
        else:
            zh += (
                f"通知发布后，请在 {config} 的 [schedule] 中设置 calendar_dir（例如 "
                f'"/etc/edumon/calendar"），把通知按 README“工作日历”一节的格式写成该目录下的 '
                f"{year}.toml，运行 edumon check-config {config} 校验后重启 edumon 一次；"
                "以后每年只需放入新文件。"
            )
            en += (
                f" When the notice is published, set calendar_dir under [schedule] in {config} "
                f'(e.g. "/etc/edumon/calendar"), write the notice as {year}.toml in that '
                f"directory (format: README, 'Working calendar'), check it with "
                f"`edumon check-config {config}` and restart edumon once; later years need "
                "only the new file."
            )
        return f"{zh} / {en}"

    # -- loading ---------------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        # Whoever finds the snapshot stale re-reads; the others go on with the old one.
        if abs(self._clock() - self._loaded_at) >= self._reload_seconds and self._lock.acquire(
            blocking=False
        ):
            try:
                self._reload_locked()
            finally:
                self._lock.release()
        return self._snapshot

    def _reload_locked(self) -> None:
        shipped = self._reader.read(self._shipped_dir)
        configured = (
            self._reader.read(self._dir) if self._dir is not None else DirectoryScan(Path())
        )
        snapshot = _Snapshot(
            (
                _Layer.of(CalendarSource.CONFIGURED, configured.arrangements),
                _Layer.of(CalendarSource.SHIPPED, shipped.arrangements),
            ),
            shipped.problems + configured.problems,
            shipped.rejected + configured.rejected,
        )
        old = self._snapshot
        for problem in snapshot.problems:
            if problem not in old.problems:
                log.error("工作日历文件无法使用，已忽略 / arrangement file not used: %s", problem)
        before = old.layers[0].years if old.layers else {}
        for year, arrangement in snapshot.layers[0].years.items():
            if before.get(year) != arrangement:
                log.info(
                    "工作日历：已读入%d年放假安排 / arrangement for %d read from %s (%s, %s)",
                    year,
                    year,
                    arrangement.where,
                    arrangement.title,
                    arrangement.published.isoformat(),
                )
        self._snapshot = snapshot
        self._loaded_at = self._clock()
