"""China's working calendar: 法定节假日 and 调休 from arrangement files, chinese-calendar, the law.

``ChineseWorkingCalendar`` answers which dates are working days and which source decided;
``calendar_of`` builds it from the configuration. Arrangement files (one ``YYYY.toml`` per
State Council notice) ship in ``arrangements/`` and may be added in ``[schedule] calendar_dir``.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from edumon.config import Config
from edumon.workcalendar.arrangement import (
    Arrangement,
    ArrangementError,
    HolidaySpan,
    parse_arrangement,
)
from edumon.workcalendar.calendar import RELOAD_SECONDS, ChineseWorkingCalendar
from edumon.workcalendar.files import SHIPPED_DIR, ArrangementReader, DirectoryScan, check_directory

__all__ = [
    "RELOAD_SECONDS",
    "SHIPPED_DIR",
    "Arrangement",
    "ArrangementError",
    "ArrangementReader",
    "ChineseWorkingCalendar",
    "DirectoryScan",
    "HolidaySpan",
    "calendar_of",
    "check_directory",
    "parse_arrangement",
]


def calendar_of(config: Config) -> ChineseWorkingCalendar:
    """The working calendar the configuration asks for (its calendar_dir and time zone)."""
    schedule = config.schedule
    return ChineseWorkingCalendar(
        schedule.calendar_path(config.source),
        timezone=ZoneInfo(schedule.timezone),
        config_file=config.source,
    )
