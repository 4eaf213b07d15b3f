"""Keeps the outage tracker current: every few seconds, school and classroom outages from state.

The tracker (``edumon.domain.outages``) is pure; this task feeds it the parent-failure view
(``edumon.domain.topology``) and each classroom's terminal and lesson, records an event for
every outage that opens or closes, and hands the transitions to whoever listens (the built-in
notifications). /metrics reads the tracker for ``edumon_school_outage`` and
``edumon_classroom_outage``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from edumon.domain.alerts import Alert, AlertStatus
from edumon.domain.inventory import SchoolRef
from edumon.domain.models import Event, EventKind
from edumon.domain.outages import Outage, OutageKind, OutageTracker, RoomNow, Transition
from edumon.domain.topology import assess
from edumon.runtime import Runtime
from edumon.views import classrooms_now, schedule_timezone

log = logging.getLogger(__name__)

DEFAULT_EVERY_SECONDS = 2.0

Listener = Callable[[list[Transition]], None]


class OutageWatch:
    """Ticks the runtime's outage tracker and records what changes.

    Args:
        runtime: the daemon's parts; its ``outages`` tracker is the one updated.
        clock: the current time (Unix seconds); tests pass a controllable one.
        every_seconds: how often ``run`` ticks.
        listeners: called with each tick's transitions (never blocking: they queue).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], float] = time.time,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        if runtime.outages is None:
            runtime.outages = OutageTracker()
        self.tracker: OutageTracker = runtime.outages
        self._runtime = runtime
        self._clock = clock
        self._every = every_seconds
        self._listeners = listeners

    def tick(self) -> list[Transition]:
        """Update the tracker for now; record events and notify listeners of what changed."""
        now = self._clock()
        runtime = self._runtime
        topo = assess(runtime.state)
        # Only a classroom whose terminal is not online, or that is in an outage, can open or
        # close one: a city's tick looks at those, not at its 20,000 classrooms.
        relevant = set(self.tracker.classrooms)
        if runtime.terminals is not None:
            relevant.update(
                st.classroom for st in runtime.terminals.terminals.values() if not st.online
            )
        rooms = [
            RoomNow(
                school=c.school.code,
                classroom=c.room.id,
                status=c.status,
                # Never heard from since edumon started: offline for as long as edumon knows,
                # not since the lesson began (a restart must not open outages at once).
                offline_since=(
                    None
                    if c.online
                    else c.since
                    if c.since is not None
                    else runtime.started_at or None
                ),
                lesson_start=c.lesson_start,
                lesson=c.period,
                day_end=c.day_end,
            )
            for c in classrooms_now(runtime, now, topology=topo, only=relevant)
            # A terminal the collector cannot know (it was blind) neither opens nor closes an
            # outage: the broker's outage is not the classroom's (docs/alerting.md).
            if c.terminal is not None and c.lesson is not None and not c.stale
        ]
        connectivity = {code: link.connectivity for code, link in topo.schools.items()}
        transitions = self.tracker.update(now, connectivity, rooms)
        if transitions:
            events = tuple(self._event(t) for t in transitions)
            runtime.collector.record_events(events)
            for listener in self._listeners:
                listener(transitions)
        return transitions

    async def run(self) -> None:
        """Tick forever; a bug in one tick is logged, not fatal to the daemon."""
        while True:
            try:
                self.tick()
            except Exception:  # pragma: no cover - a bug; keep watching, say so loudly
                log.exception("outage watch failed this tick")
            await asyncio.sleep(self._every)

    def _event(self, t: Transition) -> Event:
        o = t.outage
        school, school_name, room_name = _names(self._runtime, o)
        zone = schedule_timezone(self._runtime)
        since = datetime.fromtimestamp(o.started_at, zone).strftime("%m-%d %H:%M")
        if o.kind is OutageKind.SCHOOL:
            kind = EventKind.SCHOOL_OUTAGE if t.opened else EventKind.SCHOOL_RESTORED
            device = school.uplink_switch if school is not None else o.school
            if t.opened:
                what = "上联中断" if o.cause == "uplink_down" else "与城域网失联"
                message = f"{school_name}（{o.school}）{what}，自 {since} 起 / school cut off"
            else:
                message = (
                    f"{school_name}（{o.school}）网络已恢复（中断自 {since}）/ school restored"
                )
            classroom = None
        else:
            kind = EventKind.CLASSROOM_OUTAGE if t.opened else EventKind.CLASSROOM_RESTORED
            device = o.classroom or ""
            classroom = o.classroom
            if t.opened:
                message = (
                    f"{school_name} {room_name}（{o.classroom}）上课时间终端离线"
                    f"（{o.lesson}，自 {since} 起）/ terminal offline during a lesson"
                )
            else:
                why = o.close_reason.label if o.close_reason is not None else ""
                message = f"{school_name} {room_name}（{o.classroom}）离线结束：{why} / outage over"
        details: dict[str, object] = {
            "started_at": o.started_at,
            "opened_at": o.opened_at,
        }
        if o.lesson is not None:
            details["lesson"] = o.lesson
        if o.cause is not None:
            details["cause"] = o.cause
        if not t.opened:
            details["close_reason"] = o.close_reason.value if o.close_reason else None
            details["duration_seconds"] = (o.closed_at or o.opened_at) - o.started_at
        at = o.opened_at if t.opened else (o.closed_at or o.opened_at)
        return Event(
            at=at,
            kind=kind,
            device_id=device,
            school=o.school,
            classroom=classroom,
            message=message,
            details=details,
        )


# The names of the shipped Prometheus rules for the same outages (deploy/prometheus/rules/), so
# that a district reading both sees one vocabulary.
SCHOOL_ALERT = "EdumonSchoolDown"
CLASSROOM_ALERT = "EdumonClassroomTerminalOffline"


def alerts_of(runtime: Runtime, transitions: list[Transition]) -> list[Alert]:
    """Built-in notifications for outages that opened (firing) or closed (resolved)."""
    return [_alert(runtime, t) for t in transitions]


def _names(runtime: Runtime, o: Outage) -> tuple[SchoolRef | None, str, str | None]:
    """The outage's school, and the display names of the school and classroom."""
    school = runtime.state.inventory.schools.get(o.school)
    school_name = school.name if school is not None else o.school
    if o.classroom is None:
        return school, school_name, None
    room = next((r for r in (school.classrooms if school else ()) if r.id == o.classroom), None)
    return school, school_name, room.name if room is not None else o.classroom


def _alert(runtime: Runtime, t: Transition) -> Alert:
    o: Outage = t.outage
    school, school_name, room_name = _names(runtime, o)
    status: AlertStatus = "firing" if t.opened else "resolved"
    base = Alert(
        name=CLASSROOM_ALERT,
        status=status,
        severity="warning",
        school=o.school,
        school_name=school_name,
        starts_at=o.started_at,
        ends_at=None if t.opened else o.closed_at,
        summary="",
        fingerprint=f"edumon|{o.kind.value}|{o.school}|{o.classroom or ''}|{o.started_at:.0f}",
    )
    if o.kind is OutageKind.SCHOOL:
        what = "上联中断" if o.cause == "uplink_down" else "与教育城域网失联"
        return replace(
            base,
            name=SCHOOL_ALERT,
            severity="critical",
            summary=f"{school_name} {what}，全校教室终端状态未知",
            device=school.uplink_switch if school is not None else None,
        )
    summary = f"{school_name} {room_name} 上课时间班班通终端离线"
    if not t.opened and o.close_reason is not None:
        summary += f"（{o.close_reason.label}）"
    return replace(
        base,
        summary=summary,
        classroom=o.classroom,
        classroom_name=room_name,
        lesson=o.lesson,
        device=o.classroom,
    )
