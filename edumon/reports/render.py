"""Reports as the API's models (JSON), and the monthly report as text, CSV and HTML.

``edumon report`` and ``/api/v1/reports/monthly`` both render the ``MonthlyReportOut`` made
here from one ``monthly_report``, so the command and the API print the same numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from edumon.domain.availability import Availability, Compliance
from edumon.exporters import schemas as s
from edumon.reports.availability import Report, RoomFigures
from edumon.reports.monthly import MonthlyReport, Outage

LocalTime = Callable[[float], datetime]
"""Unix seconds → an aware datetime in the district's zone (the API passes ``local_time``)."""

_STATUS: dict[str, tuple[str, str]] = {
    "ok": ("完整", "fully monitored"),
    "partial": ("部分监测", "partly monitored"),
    "no_data": ("无数据", "no data"),
    "no_lessons": ("无课", "no lessons"),
}
NO_DATA = "无数据 no data"


def data_status(a: Availability) -> str:
    """ok, partial, no_data or no_lessons (see ``schemas.Figures.status``)."""
    if a.lesson_seconds <= 0:
        return "no_lessons"
    if a.monitored_seconds <= 0:
        return "no_data"
    return "ok" if a.monitored_seconds >= a.lesson_seconds else "partial"


def figures(a: Availability) -> dict[str, Any]:
    """The fields of ``schemas.Figures``."""
    status = data_status(a)
    text, text_en = _STATUS[status]
    return {
        "status": status,
        "status_text": text,
        "status_text_en": text_en,
        "coverage": a.coverage,
        "online_rate": a.online_rate,
        "usage_rate": a.usage_rate,
        "power_on_rate": a.power_on_rate,
        "online_minutes": a.online_seconds / 60,
        "monitored_minutes": a.monitored_seconds / 60,
        "lesson_minutes": a.lesson_seconds / 60,
        "lessons_used": a.lessons_used,
        "lessons_monitored": a.lessons_monitored,
        "lessons": a.lessons,
        "terminals_on": a.terminals_on,
        "terminal_days_monitored": a.terminal_days_monitored,
        "terminal_days": a.terminal_days,
    }


def daily(report: Report, at: LocalTime) -> s.DailyAvailability:
    """One day's availability report."""
    schools = []
    for sf in report.schools:
        the_day = sf.days[0]
        schools.append(
            s.SchoolDayFigures(
                **figures(sf.totals),
                school=sf.school.code,
                school_name=sf.school.name,
                kind=sf.school.kind,
                is_school_day=the_day.is_school_day,
                day_reason=the_day.reason.value,
                term=the_day.term,
                calendar_fallback=the_day.calendar_fallback,
                classrooms=[
                    s.ClassroomDayFigures(
                        **figures(r.totals),
                        classroom=r.room.id,
                        classroom_name=r.room.name,
                        terminal=r.terminal,
                        switched_on=r.days[0].switched_on,
                    )
                    for r in sf.rooms
                ],
            )
        )
    return s.DailyAvailability(
        day=report.first_day,
        complete=report.complete,
        rolled_up=report.rolled_up_days > 0,
        as_of=at(report.as_of),
        district=s.Figures(**figures(report.totals)),
        schools=schools,
    )


def monthly(report: Report, month: str, at: LocalTime) -> s.MonthlyAvailability:
    """One month's availability report."""
    return s.MonthlyAvailability(
        month=month,
        first_day=report.first_day,
        last_day=report.last_day,
        complete=report.complete,
        rolled_up_days=report.rolled_up_days,
        as_of=at(report.as_of),
        district=s.Figures(**figures(report.totals)),
        schools=[
            s.SchoolMonthFigures(
                **figures(sf.totals),
                school=sf.school.code,
                school_name=sf.school.name,
                kind=sf.school.kind,
                school_days=sf.school_days,
                calendar_fallback_days=sf.calendar_fallback_days,
                classrooms=[
                    s.ClassroomMonthFigures(
                        **figures(r.totals),
                        classroom=r.room.id,
                        classroom_name=r.room.name,
                        terminal=r.terminal,
                        days_switched_on=r.days_switched_on,
                    )
                    for r in sf.rooms
                ],
            )
            for sf in report.schools
        ],
    )


def _compliance(c: Compliance) -> s.ComplianceFigures:
    return s.ComplianceFigures(
        rate=c.rate,
        coverage=c.coverage,
        lesson_buckets=c.lesson_buckets,
        polled_buckets=c.polled_buckets,
        judged_buckets=c.judged_buckets,
        compliant_buckets=c.compliant_buckets,
    )


def _worst(school_code: str, school_name: str, r: RoomFigures) -> s.WorstClassroom:
    return s.WorstClassroom(
        school=school_code,
        school_name=school_name,
        classroom=r.room.id,
        classroom_name=r.room.name,
        online_rate=r.totals.online_rate or 0.0,
        usage_rate=r.totals.usage_rate,
        coverage=r.totals.coverage,
    )


def monthly_report(report: MonthlyReport, at: LocalTime) -> s.MonthlyReportOut:
    """The monthly report as the API's model (and the source of its text, CSV and HTML)."""
    names = {sm.school.code: sm.school.name for sm in report.schools}
    rooms = {
        (sm.school.code, room.id): room.name
        for sm in report.schools
        for room in sm.school.classrooms
    }

    def outage(o: Outage) -> s.OutageOut:
        return s.OutageOut(
            kind="school" if o.kind == "school" else "classroom",
            school=o.school,
            school_name=names.get(o.school, o.school),
            classroom=o.classroom,
            classroom_name=rooms.get((o.school, o.classroom or ""), o.classroom)
            if o.classroom is not None
            else None,
            start=at(o.start),
            end=at(o.end) if o.end is not None else None,
            duration_minutes=o.duration(report.now) / 60,
            ongoing=o.end is None,
            lesson=o.lesson,
            cause=o.cause,
        )

    a = report.availability
    label = report.label
    return s.MonthlyReportOut(
        month=label,
        first_day=a.first_day,
        last_day=a.last_day,
        complete=a.complete,
        as_of=at(report.now),
        title=f"{label} 月度网络与终端运行报告",
        title_en=f"Monthly network and terminal report, {label}",
        district=s.ReportFigures(
            **figures(report.totals),
            uplink_compliance=_compliance(report.uplink),
            classroom_compliance=_compliance(report.classrooms),
            outages=len(report.outages),
        ),
        schools=[
            s.SchoolReport(
                **figures(sm.totals),
                uplink_compliance=_compliance(sm.uplink),
                classroom_compliance=_compliance(sm.classrooms),
                outages=len(sm.outages),
                school=sm.school.code,
                school_name=sm.school.name,
                school_days=sm.figures.school_days,
                worst_classrooms=[_worst(sm.school.code, sm.school.name, r) for r in sm.worst()],
            )
            for sm in report.schools
        ],
        outages=[outage(o) for o in report.outages],
        worst_classrooms=[_worst(ref.code, ref.name, r) for ref, r in report.worst()],
    )


# -- text, CSV and HTML -------------------------------------------------------------------------


def percent(rate: float | None) -> str:
    """A rate as a percentage with one decimal ("87.5"), or "" for no figure."""
    return "" if rate is None else f"{rate * 100:.1f}"


def shown(rate: float | None) -> str:
    """A rate for a person: "87.5 %", or "无数据 no data"."""
    return NO_DATA if rate is None else f"{rate * 100:.1f} %"


def duration(minutes: float) -> str:
    """Minutes as 时/分 ("2 时 05 分"), seconds under a minute ("45 秒")."""
    if minutes < 1:
        return f"{round(minutes * 60)} 秒"
    whole = round(minutes)
    hours, rest = divmod(whole, 60)
    return f"{hours} 时 {rest:02d} 分" if hours else f"{rest} 分"


def stamp(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M")


FIGURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("数据状态 status", "status"),
    ("监测覆盖率 coverage %", "coverage"),
    ("在线率 online %", "online_rate"),
    ("开机率 power-on %", "power_on_rate"),
    ("使用率 usage %", "usage_rate"),
)
"""Header (Chinese, English beside it) and field of each figure column in the CSVs."""


def figure_cells(f: s.Figures) -> list[str]:
    """The figure columns of one row: status text, then percentages with one decimal."""
    return [
        f"{f.status_text} {f.status_text_en}",
        percent(f.coverage),
        percent(f.online_rate),
        percent(f.power_on_rate),
        percent(f.usage_rate),
    ]


def csv_text(rows: Iterable[Sequence[object]]) -> bytes:
    """Rows as CSV, UTF-8 with a BOM (Excel in China otherwise assumes GBK)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if c is None else c for c in row])
    return out.getvalue().encode("utf-8-sig")


def report_csv(r: s.MonthlyReportOut) -> bytes:
    """The monthly report as CSV: the figures, then the outages, then the worst classrooms."""
    rows: list[Sequence[object]] = [
        [r.title, r.title_en],
        [
            "级别 level",
            "学校代码 school",
            "学校 school name",
            *(h for h, _ in FIGURE_COLUMNS),
            "上联达标率 uplink compliance %",
            "上联数据覆盖率 uplink coverage %",
            "班级达标率 classroom compliance %",
            "班级数据覆盖率 classroom coverage %",
            "中断次数 outages",
        ],
    ]
    levels: list[tuple[str, str, str, s.ReportFigures]] = [("全区 district", "", "", r.district)]
    levels += [("学校 school", sc.school, sc.school_name, sc) for sc in r.schools]
    for level, code, name, f in levels:
        rows.append(
            [
                level,
                code,
                name,
                *figure_cells(f),
                percent(f.uplink_compliance.rate),
                percent(f.uplink_compliance.coverage),
                percent(f.classroom_compliance.rate),
                percent(f.classroom_compliance.coverage),
                f.outages,
            ]
        )
    rows.append([])
    rows.append(
        [
            "中断 outage",
            "学校代码 school",
            "学校 school name",
            "教室代码 classroom",
            "教室 classroom name",
            "开始 start",
            "结束 end",
            "时长(分钟) duration (min)",
        ]
    )
    for o in r.outages:
        rows.append(
            [
                "学校断网 school" if o.kind == "school" else "教室离线 classroom",
                o.school,
                o.school_name,
                o.classroom,
                o.classroom_name,
                stamp(o.start),
                stamp(o.end) if o.end is not None else "进行中 ongoing",
                f"{o.duration_minutes:.1f}",
            ]
        )
    rows.append([])
    rows.append(
        [
            "最差教室 worst classroom",
            "学校代码 school",
            "学校 school name",
            "教室代码 classroom",
            "教室 classroom name",
            "在线率 online %",
            "使用率 usage %",
            "监测覆盖率 coverage %",
        ]
    )
    for i, w in enumerate(r.worst_classrooms, 1):
        rows.append(
            [
                i,
                w.school,
                w.school_name,
                w.classroom,
                w.classroom_name,
                percent(w.online_rate),
                percent(w.usage_rate),
                percent(w.coverage),
            ]
        )
    return csv_text(rows)


def report_text(r: s.MonthlyReportOut) -> str:
    """The monthly report for a terminal: Chinese, English beside it."""
    lines = [
        f"{r.title} / {r.title_en}",
        f"统计区间 period: {r.first_day} – {r.last_day}"
        + ("" if r.complete else "（本月未结束 month not over）"),
        f"生成时间 generated: {stamp(r.as_of)} ({r.as_of.strftime('%z')})",
        "",
    ]

    def block(name: str, f: s.ReportFigures) -> None:
        lines.append(f"== {name} ==")
        lines.append(f"  数据状态 status:         {f.status_text} {f.status_text_en}")
        lines.append(f"  监测覆盖率 coverage:     {shown(f.coverage)}")
        lines.append(f"  在线率 online rate:      {shown(f.online_rate)}")
        lines.append(f"  开机率 power-on rate:    {shown(f.power_on_rate)}")
        lines.append(f"  使用率 usage rate:       {shown(f.usage_rate)}")
        lines.append(
            f"  上联达标率 uplink compliance:    {shown(f.uplink_compliance.rate)}"
            f"（数据覆盖 coverage {shown(f.uplink_compliance.coverage)}）"
        )
        lines.append(
            f"  班级达标率 classroom compliance: {shown(f.classroom_compliance.rate)}"
            f"（数据覆盖 coverage {shown(f.classroom_compliance.coverage)}）"
        )
        lines.append(f"  中断 outages: {f.outages}")

    block("全区 district", r.district)
    for sc in r.schools:
        lines.append("")
        block(f"{sc.school_name}（{sc.school}）", sc)
        for w in sc.worst_classrooms:
            room = f"{w.classroom_name}（{w.classroom}）"
            lines.append(f"  较差教室 worst: {room} 在线率 {shown(w.online_rate)}")
    lines.append("")
    lines.append("== 中断 outages ==")
    if not r.outages:
        lines.append("  无 none")
    for o in r.outages:
        where = f"{o.school_name}（{o.school}）"
        if o.classroom is not None:
            where += f" {o.classroom_name}（{o.classroom}）"
        end = stamp(o.end) if o.end is not None else "进行中 ongoing"
        lines.append(
            f"  {'学校断网' if o.kind == 'school' else '教室离线'} {where}: "
            f"{stamp(o.start)} – {end}，{duration(o.duration_minutes)}"
        )
    lines.append("")
    lines.append("== 最差教室 worst classrooms ==")
    if not r.worst_classrooms:
        lines.append(f"  {NO_DATA}")
    for i, w in enumerate(r.worst_classrooms, 1):
        lines.append(
            f"  {i}. {w.school_name} {w.classroom_name}（{w.classroom}）"
            f"在线率 {shown(w.online_rate)}，使用率 {shown(w.usage_rate)}"
        )
    return "\n".join(lines) + "\n"


def report_html(r: s.MonthlyReportOut) -> str:
    """The monthly report as a printable Chinese HTML page (no external assets)."""
    env = Environment(
        loader=PackageLoader("edumon.reports", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shown"] = shown
    env.filters["stamp"] = stamp
    env.filters["duration"] = duration
    return env.get_template("monthly.html").render(r=r, no_data=NO_DATA)
