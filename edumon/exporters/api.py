"""The status API: district, schools, switches, terminals, events, compliance and availability
under /api/v1, plus /metrics.

Every handler is ``async``: the network state is owned by the event loop (the collector
mutates it between awaits), so reading it on the loop, not in a worker thread, always sees
a consistent snapshot.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client.exposition import choose_encoder

from edumon.domain.availability import Availability
from edumon.domain.checks import CheckName, CheckResult, SchoolCompliance, Verdict, check_district
from edumon.domain.inventory import SchoolRef
from edumon.domain.models import Event, EventKind, OperStatus
from edumon.domain.state import DeviceState, InterfaceState
from edumon.domain.topology import Connectivity, Topology, assess
from edumon.errors import StoreError
from edumon.exporters import schemas as s
from edumon.exporters.alertmanager_receiver import alertmanager_router
from edumon.exporters.metrics import create_registry
from edumon.exporters.outages_api import outages_router
from edumon.reports.availability import (
    Report,
    ReportError,
    daily_availability,
    monthly_availability,
)
from edumon.runtime import Runtime
from edumon.views import ClassroomNow, classrooms_now, local_date, terminal_speeds

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_EVENTS = 1000
# /readyz answers within this even if the database hangs (the store's own ping is shorter).
READY_TIMEOUT_SECONDS = 10.0
_TIME_HELP = "ISO-8601 with a UTC offset (2024-09-01T08:00:00+08:00, or Z for UTC) or Unix seconds"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _csv_responses() -> dict[int | str, dict[str, Any]]:
    """OpenAPI for a report's other answers (a new dict per route: FastAPI keeps it)."""
    return {
        200: {
            "description": "The report as JSON, or as CSV (UTF-8 with a BOM, for Excel) with "
            "?format=csv or Accept: text/csv",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        404: {"description": "No school with this code"},
        503: {"description": "No lesson schedule, or the database is unavailable"},
    }


_Format = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv for a CSV download (or send Accept: text/csv)"),
]


def create_app(runtime: Runtime, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The HTTP app: the status API, health checks and Prometheus /metrics.

    Args:
        runtime: the daemon's live parts; handlers only read from it.
        clock: the current time in Unix seconds (lessons now, today's date); tests pass one.

    Returns:
        A FastAPI app with its own metrics registry; OpenAPI at /openapi.json and /docs.
    """
    app = FastAPI(
        title="edumon",
        summary="Status of a district's school network links against its bandwidth targets",
        version="1",
    )
    registry = create_registry(runtime, clock=clock)
    app.include_router(_api_router(runtime, clock), prefix=API_PREFIX)
    app.include_router(alertmanager_router(runtime), prefix=API_PREFIX)
    app.include_router(outages_router(runtime), prefix=API_PREFIX)

    @app.get("/healthz", response_model=s.Health, tags=["health"])
    async def healthz() -> s.Health:
        """Liveness: the process serves HTTP."""
        return s.Health(status="ok")

    @app.get(
        "/readyz",
        response_model=s.Health,
        tags=["health"],
        responses={503: {"model": s.Health, "description": "The database is unreachable"}},
    )
    async def readyz() -> s.Health | JSONResponse:
        """Readiness: the database answers."""
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                ok = await runtime.store.ping()
        except TimeoutError:
            ok = False
        if ok:
            return s.Health(status="ready")
        body = s.Health(status="unavailable", detail="the database is unreachable")
        return JSONResponse(body.model_dump(), status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # Prometheus asks for OpenMetrics in its Accept header; a browser gets plain text.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    return app


def _calendar_status(runtime: Runtime, now: float) -> s.CalendarStatus | None:
    calendar = runtime.calendar
    if calendar is None:
        return None
    today = local_date(runtime, now)
    coverage = calendar.coverage(today)
    last = max([today.year + 1, *(y for y in coverage.years if y > today.year)])
    sources = {}
    for year in range(today.year - 1, last + 1):
        source = coverage.years.get(year) or calendar.workday(date(year, 7, 1)).source
        sources[str(year)] = s.CalendarYear(source=source.value, file=coverage.files.get(year))
    return s.CalendarStatus(
        today=today,
        today_source=calendar.workday(today).source.value,
        covered_until=coverage.covered_until,
        sources=sources,
        warning=coverage.advice or None,
        file_problems=list(coverage.problems),
    )


def _api_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    router = APIRouter()
    state = runtime.state
    inventory = state.inventory

    def compliance() -> dict[str, SchoolCompliance]:
        # Classrooms without a mapped switch port are judged by their terminal's NIC speed.
        return check_district(state, runtime.config.targets, terminal_speeds(runtime))

    def school_or_404(code: str) -> SchoolRef:
        school = inventory.schools.get(code)
        if school is None:
            raise HTTPException(
                404, f"no school with code {code!r}; GET {API_PREFIX}/schools lists them"
            )
        return school

    @router.get("/summary", response_model=s.Summary, tags=["district"])
    async def summary() -> s.Summary:
        """The district at a glance: targets, compliance counts, switches and events."""
        results = compliance()
        devices = state.devices.values()
        district = runtime.config.district
        topo = assess(state)
        tracker = runtime.outages
        by_kind = {k.value: runtime.collector.stats.events_total.get(k.value, 0) for k in EventKind}
        return s.Summary(
            district=s.District(code=district.code, name=district.name),
            targets=_targets(runtime),
            schools=_counts([sc.verdict for sc in results.values()]),
            classrooms=_counts([r.verdict for sc in results.values() for r in sc.classrooms]),
            switches=s.SwitchCounts(
                total=len(state.devices),
                up=sum(1 for d in devices if d.reachable is True),
                down=sum(1 for d in devices if d.reachable is False),
                never_polled=sum(1 for d in devices if d.reachable is None),
            ),
            connectivity={
                c.value: sum(1 for link in topo.schools.values() if link.connectivity is c)
                for c in Connectivity
            },
            outages=s.OutageCounts(
                schools=len(tracker.schools) if tracker is not None else 0,
                classrooms=len(tracker.classrooms) if tracker is not None else 0,
            ),
            events=s.EventCounts(total=sum(by_kind.values()), by_kind=by_kind),
            calendar=_calendar_status(runtime, clock()),
            generated_at=datetime.now(UTC),
        )

    @router.get("/schools", response_model=s.SchoolList, tags=["schools"])
    async def schools() -> s.SchoolList:
        """Every school with its verdict, uplink and number of failing classrooms."""
        results = compliance()
        topo = assess(state)
        rows = []
        for code, school in inventory.schools.items():
            sc = results[code]
            rows.append(
                s.SchoolRow(
                    code=code,
                    name=school.name,
                    kind=school.kind,
                    verdict=sc.verdict,
                    connectivity=_connectivity(runtime, topo, code),
                    uplink=_uplink(runtime, school),
                    classrooms_total=len(school.classrooms),
                    classrooms_failing=sum(1 for r in sc.classrooms if r.verdict is Verdict.FAIL),
                )
            )
        return s.SchoolList(schools=rows)

    @router.get(
        "/schools/{code}",
        response_model=s.SchoolDetail,
        tags=["schools"],
        responses={404: {"description": "No school with this code"}},
    )
    async def school(code: str) -> s.SchoolDetail:
        """One school: its uplink and checks, each classroom's port and check, its switches."""
        ref = school_or_404(code)
        sc = compliance()[code]
        room_checks = {r.classroom: r for r in sc.classrooms}
        terminals = {c.room.id: c for c in classrooms_now(runtime, clock(), school=code)}
        classrooms = []
        for room in ref.classrooms:
            iface = _iface(runtime, room.switch, room.port)
            check = room_checks.get(room.id)
            classrooms.append(
                s.Classroom(
                    id=room.id,
                    name=room.name,
                    switch=room.switch,
                    port=room.port,
                    status=_port_status(runtime, room.switch, room.port),
                    speed_mbps=_speed_now(runtime, room.switch, room.port),
                    last_speed_mbps=iface.last_speed_mbps if iface is not None else None,
                    check=_check(check) if check is not None else None,
                    terminal=_classroom_terminal(terminals[room.id]),
                )
            )
        base = _uplink(runtime, ref)
        switch_ids = {sid for sid, sw in runtime.config.switches.items() if sw.school == code}
        switch_ids.add(ref.uplink_switch)
        switch_ids.update(r.switch for r in ref.classrooms if r.switch is not None)
        topo = assess(state)
        return s.SchoolDetail(
            code=code,
            name=ref.name,
            kind=ref.kind,
            verdict=sc.verdict,
            connectivity=_connectivity(runtime, topo, code),
            uplink=s.UplinkDetail(**base.model_dump(), checks=[_check(r) for r in sc.uplink]),
            classrooms=classrooms,
            switches=[
                _switch(runtime, state.devices[sid], topo)
                for sid in sorted(switch_ids)
                if sid in state.devices
            ],
        )

    @router.get("/switches", response_model=s.SwitchList, tags=["switches"])
    async def switches() -> s.SwitchList:
        """Every switch: reachability, uptime, reboots, last error and poll statistics."""
        topo = assess(state)
        return s.SwitchList(
            switches=[_switch(runtime, state.devices[sid], topo) for sid in sorted(state.devices)]
        )

    @router.get(
        "/switches/{switch_id}/interfaces",
        response_model=s.SwitchInterfaces,
        tags=["switches"],
        responses={404: {"description": "No switch with this id"}},
    )
    async def interfaces(switch_id: str) -> s.SwitchInterfaces:
        """One switch and its ports: status, speed, alias, rates, counters, last change."""
        dev = state.devices.get(switch_id)
        if dev is None:
            raise HTTPException(
                404, f"no switch with id {switch_id!r}; GET {API_PREFIX}/switches lists them"
            )
        ports = sorted(dev.interfaces.values(), key=lambda i: (i.if_index, i.name))
        return s.SwitchInterfaces(
            switch=_switch(runtime, dev),
            interfaces=[_interface(runtime, dev, i) for i in ports],
        )

    @router.get(
        "/events",
        response_model=s.EventPage,
        tags=["events"],
        responses={503: {"description": "The database is unavailable"}},
    )
    async def events(
        school: Annotated[str | None, Query(description="Only this school (code)")] = None,
        kind: Annotated[EventKind | None, Query(description="Only this kind of event")] = None,
        device: Annotated[str | None, Query(description="Only this switch (id)")] = None,
        since: Annotated[str | None, Query(description=f"At or after: {_TIME_HELP}")] = None,
        until: Annotated[str | None, Query(description=f"Before: {_TIME_HELP}")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_EVENTS, description="Page size")] = 100,
        offset: Annotated[int, Query(ge=0, description="Events to skip (newest first)")] = 0,
    ) -> s.EventPage:
        """State changes (link down/up, speed changes, reboots, reachability), newest first."""
        since_s = _parse_time("since", since)
        until_s = _parse_time("until", until)
        if since_s is not None and until_s is not None and since_s >= until_s:
            _invalid("since", since, "since must be earlier than until")
        try:
            found = await runtime.store.events(
                school=school,
                kind=kind,
                device=device,
                since=since_s,
                until=until_s,
                limit=limit,
                offset=offset,
            )
        except StoreError as exc:
            log.warning("listing events failed: %s", exc)
            raise HTTPException(503, "the database is unavailable; try again later") from exc
        return s.EventPage(events=[_event(e) for e in found], limit=limit, offset=offset)

    @router.get("/compliance", response_model=s.Compliance, tags=["district"])
    async def compliance_results(
        verdict: Annotated[Verdict | None, Query(description="Only this verdict")] = None,
        school: Annotated[str | None, Query(description="Only this school (code)")] = None,
        check: Annotated[CheckName | None, Query(description="Only this check")] = None,
    ) -> s.Compliance:
        """Every check result against the targets in force, with its reason."""
        if school is not None:
            school_or_404(school)
        out = [
            _check(r)
            for sc in compliance().values()
            for r in sc.results
            if (verdict is None or r.verdict is verdict)
            and (school is None or r.school == school)
            and (check is None or r.check is check)
        ]
        return s.Compliance(targets=_targets(runtime), results=out)

    _terminal_routes(router, runtime, clock, school_or_404)
    _availability_routes(router, runtime, clock, school_or_404)
    return router


def _terminal_routes(
    router: APIRouter,
    runtime: Runtime,
    clock: Callable[[], float],
    school_or_404: Callable[[str], SchoolRef],
) -> None:
    @router.get(
        "/terminals",
        response_model=s.TerminalList,
        tags=["terminals"],
        responses={404: {"description": "No school with this code"}},
    )
    async def terminals(
        school: Annotated[str | None, Query(description="Only this school (code)")] = None,
        status: Annotated[
            s.TerminalStatus | None,
            Query(description="Only this status; unknown: the school's uplink is down"),
        ] = None,
    ) -> s.TerminalList:
        """Every classroom terminal: status and why, last heartbeat, and the lesson now."""
        if school is not None:
            school_or_404(school)
        now = clock()
        rows = [
            _terminal(c)
            for c in classrooms_now(runtime, now, school=school)
            if c.terminal is not None and (status is None or c.status == status)
        ]
        return s.TerminalList(
            generated_at=datetime.fromtimestamp(now, UTC),
            counts=s.TerminalCounts(
                total=len(rows),
                online=sum(1 for r in rows if r.status == "online"),
                offline=sum(1 for r in rows if r.status == "offline"),
                unknown=sum(1 for r in rows if r.status == "unknown"),
                offline_in_lesson=sum(1 for r in rows if r.offline_in_lesson),
            ),
            terminals=rows,
        )

    @router.get("/terminals/unknown", response_model=s.UnknownTerminalList, tags=["terminals"])
    async def unknown_terminals() -> s.UnknownTerminalList:
        """Terminals that send heartbeats but are in no classroom: add them to the inventory."""
        state = runtime.terminals
        if state is None:
            return s.UnknownTerminalList(terminals=[], messages_total=0, evicted=0, limit=0)
        unknown = state.unknown
        schools = runtime.state.inventory.schools
        district = runtime.config.district.code
        return s.UnknownTerminalList(
            terminals=[
                s.UnknownTerminal(
                    district=u.district,
                    school=u.school,
                    school_known=u.district == district and u.school in schools,
                    terminal=u.terminal,
                    first_seen=datetime.fromtimestamp(u.first_seen, UTC),
                    last_seen=datetime.fromtimestamp(u.last_seen, UTC),
                    messages=u.messages,
                    ip=u.ip,
                    mac=u.mac,
                    agent_version=u.agent_version,
                )
                for u in unknown.entries()
            ],
            messages_total=unknown.messages,
            evicted=unknown.evicted,
            limit=unknown.limit,
        )

    @router.get(
        "/classrooms/offline",
        response_model=s.OfflineClassrooms,
        tags=["terminals"],
        responses={404: {"description": "No school with this code"}},
    )
    async def offline_classrooms(
        school: Annotated[str | None, Query(description="Only this school (code)")] = None,
    ) -> s.OfflineClassrooms:
        """Classrooms whose terminal is not online now: in a scheduled lesson (alerting) or not.

        Where the school's uplink is down its classrooms are listed as ``unknown`` and never
        alert: the school's own uplink alert stands for all of them.
        """
        if school is not None:
            school_or_404(school)
        now = clock()
        in_lesson: list[s.OfflineClassroom] = []
        off_schedule: list[s.OfflineClassroom] = []
        for c in classrooms_now(runtime, now, school=school):
            if c.terminal is None or c.online:
                continue
            (in_lesson if c.expected_online else off_schedule).append(_offline_classroom(c))
        return s.OfflineClassrooms(
            generated_at=datetime.fromtimestamp(now, UTC),
            schedule_known=runtime.schedule is not None and runtime.calendar is not None,
            in_lesson=in_lesson,
            off_schedule=off_schedule,
        )


def _availability_routes(
    router: APIRouter,
    runtime: Runtime,
    clock: Callable[[], float],
    school_or_404: Callable[[str], SchoolRef],
) -> None:
    async def report(making: Awaitable[Report]) -> Report:
        try:
            return await making
        except ReportError as exc:
            raise HTTPException(503, str(exc)) from exc
        except StoreError as exc:
            log.warning("availability report failed: %s", exc)
            raise HTTPException(503, "the database is unavailable; try again later") from exc

    @router.get(
        "/availability/daily",
        response_model=s.DailyAvailability,
        tags=["availability"],
        responses=_csv_responses(),
    )
    async def availability_daily(
        request: Request,
        day: Annotated[
            str | None, Query(description="Local date YYYY-MM-DD; today when omitted")
        ] = None,
        school: Annotated[str | None, Query(description="Only this school (code)")] = None,
        fmt: _Format = None,
    ) -> s.DailyAvailability | Response:
        """在线率, 开机率 and 使用率 of one school day, per classroom and per school.

        Rates are null on a day without lessons (weekend, holiday, 寒暑假). Today's figures are
        live (``complete`` false): lessons still to come count in the denominators.
        """
        now = clock()
        today = local_date(runtime, now)
        when = _parse_day(day) if day is not None else today
        if when > today:
            _invalid("day", day, f"{when.isoformat()} has not begun; there are no figures yet")
        if school is not None:
            school_or_404(school)
        found = await report(daily_availability(runtime, when, now, school=school))
        body = _daily(found)
        if not _wants_csv(request, fmt):
            return body
        suffix = f"{school}-" if school is not None else ""
        return _csv_response(
            f"edumon-availability-{suffix}{when.isoformat()}.csv", _DAILY_COLUMNS, _daily_rows(body)
        )

    @router.get(
        "/availability/monthly",
        response_model=s.MonthlyAvailability,
        tags=["availability"],
        responses=_csv_responses(),
    )
    async def availability_monthly(
        request: Request,
        month: Annotated[
            str | None, Query(description="Local month YYYY-MM; this month when omitted")
        ] = None,
        school: Annotated[str | None, Query(description="Only this school (code)")] = None,
        fmt: _Format = None,
    ) -> s.MonthlyAvailability | Response:
        """在线率, 开机率 and 使用率 of one month, per classroom and per school.

        Summed over the month's school days (a month's 在线率 is its online lesson time over its
        lesson time, not a mean of daily rates); the current month runs up to today.
        """
        now = clock()
        today = local_date(runtime, now)
        year, mon = _parse_month(month) if month is not None else (today.year, today.month)
        if (year, mon) > (today.year, today.month):
            _invalid("month", month, f"{month} has not begun; there are no figures yet")
        if school is not None:
            school_or_404(school)
        found = await report(monthly_availability(runtime, year, mon, now, school=school))
        body = _monthly(found, f"{year:04d}-{mon:02d}")
        if not _wants_csv(request, fmt):
            return body
        suffix = f"{school}-" if school is not None else ""
        return _csv_response(
            f"edumon-availability-{suffix}{body.month}.csv", _MONTHLY_COLUMNS, _monthly_rows(body)
        )


# -- conversions from domain objects --------------------------------------------------------


def _targets(runtime: Runtime) -> s.TargetProfile:
    t = runtime.config.targets
    return s.TargetProfile(
        profile=t.profile, uplink_mbps=t.uplink_mbps, classroom_mbps=t.classroom_mbps
    )


def _counts(verdicts: list[Verdict]) -> s.VerdictCounts:
    return s.VerdictCounts(
        total=len(verdicts),
        passing=verdicts.count(Verdict.PASS),
        fail=verdicts.count(Verdict.FAIL),
        unknown=verdicts.count(Verdict.UNKNOWN),
    )


def _check(r: CheckResult) -> s.Check:
    return s.Check(
        check=r.check,
        school=r.school,
        classroom=r.classroom,
        verdict=r.verdict,
        reason=r.reason,
        switch=r.device_id,
        port=r.interface,
        speed_mbps=r.speed_mbps,
        target_mbps=r.target_mbps,
    )


def _iface(runtime: Runtime, switch: str | None, port: str | None) -> InterfaceState | None:
    if switch is None or port is None:
        return None
    return runtime.state.interface(switch, port)


def _known(runtime: Runtime, switch: str | None, port: str | None) -> InterfaceState | None:
    """The port's state if its switch answered the last poll, else None (unknown)."""
    iface = _iface(runtime, switch, port)
    if iface is None or not iface.known:
        return None
    dev = runtime.state.devices.get(iface.device_id)
    return iface if dev is not None and dev.reachable else None


def _status_of(iface: InterfaceState | None) -> s.PortStatus:
    if iface is None:
        return "unknown"
    status: s.PortStatus = _OPER_NAMES[iface.oper_status]
    return status


_OPER_NAMES: dict[OperStatus, s.PortStatus] = {
    OperStatus.UP: "up",
    OperStatus.DOWN: "down",
    OperStatus.TESTING: "testing",
    OperStatus.UNKNOWN: "unknown",
    OperStatus.DORMANT: "dormant",
    OperStatus.NOT_PRESENT: "not_present",
    OperStatus.LOWER_LAYER_DOWN: "lower_layer_down",
}


def _port_status(runtime: Runtime, switch: str | None, port: str | None) -> s.PortStatus:
    return _status_of(_known(runtime, switch, port))


def _speed_now(runtime: Runtime, switch: str | None, port: str | None) -> float | None:
    iface = _known(runtime, switch, port)
    if iface is None or iface.oper_status is not OperStatus.UP:
        return None
    return iface.speed_mbps


def _uplink(runtime: Runtime, school: SchoolRef) -> s.Uplink:
    sw, port = school.uplink_switch, school.uplink_port
    return s.Uplink(
        switch=sw,
        port=port,
        status=_port_status(runtime, sw, port),
        speed_mbps=_speed_now(runtime, sw, port),
    )


def _ts(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _connectivity(runtime: Runtime, topo: Topology, code: str) -> s.SchoolConnectivity:
    link = topo.schools[code]
    outage = runtime.outages.schools.get(code) if runtime.outages is not None else None
    return s.SchoolConnectivity(
        state=link.connectivity.value,
        reason=link.reason,
        outage_since=_ts(outage.started_at) if outage is not None else None,
    )


def _switch(runtime: Runtime, dev: DeviceState, topo: Topology | None = None) -> s.Switch:
    # Only the host is taken from the switch's configuration; its SNMP credentials are
    # never read here.
    sw = runtime.config.switches.get(dev.device_id)
    view = (topo if topo is not None else assess(runtime.state)).switches[dev.device_id]
    status: s.SwitchStatus = (
        "never_polled" if dev.reachable is None else ("up" if dev.reachable else "down")
    )
    return s.Switch(
        id=dev.device_id,
        school=dev.school,
        host=sw.host if sw is not None else "",
        status=status,
        reachable=dev.reachable,
        sys_name=dev.sys_name,
        sys_descr=dev.sys_descr,
        uptime_seconds=dev.uptime_seconds if dev.reachable else None,
        reboots=dev.reboots,
        last_poll_at=_ts(dev.last_poll_at),
        last_ok_at=_ts(dev.last_ok_at),
        last_error=dev.last_error,
        poll_seconds=dev.poll_seconds,
        polls_ok=dev.polls_ok,
        polls_failed=dev.polls_failed,
        interfaces=len(dev.interfaces),
        condition=view.condition.value,
        condition_reason=view.reason,
    )


def _interface(runtime: Runtime, dev: DeviceState, iface: InterfaceState) -> s.Interface:
    known = bool(dev.reachable) and iface.known
    owner = runtime.state.inventory.owner(dev.device_id, iface.name)
    return s.Interface(
        name=iface.name,
        if_index=iface.if_index,
        alias=iface.alias,
        descr=iface.descr,
        status=_status_of(iface if known else None),
        oper_status=_OPER_NAMES[iface.oper_status],
        admin_status=iface.admin_status.name.lower(),
        known=known,
        speed_mbps=iface.speed_mbps if known and iface.oper_status is OperStatus.UP else None,
        last_speed_mbps=iface.last_speed_mbps,
        in_bps=iface.in_bps if known else None,
        out_bps=iface.out_bps if known else None,
        in_octets=iface.in_octets,
        out_octets=iface.out_octets,
        in_errors=iface.in_errors,
        out_errors=iface.out_errors,
        last_change=datetime.fromtimestamp(iface.last_change, UTC),
        last_seen=datetime.fromtimestamp(iface.last_seen, UTC),
        role=owner.role.value if owner is not None else None,
        school=owner.school if owner is not None else dev.school,
        classroom=owner.classroom if owner is not None else None,
    )


def _ts_or_none(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _classroom_terminal(c: ClassroomNow) -> s.ClassroomTerminal | None:
    st = c.terminal
    if st is None:
        return None
    return s.ClassroomTerminal(
        terminal=st.terminal,
        status=c.status,
        offline_reason=c.offline_reason,
        since=_ts_or_none(c.since),
        last_seen=_ts_or_none(st.last_seen),
        link_speed_mbps=st.link_speed_mbps if st.online else None,
        expected_online=c.expected_online,
        offline_in_lesson=c.offline_in_lesson,
    )


def _terminal(c: ClassroomNow) -> s.Terminal:
    st = c.terminal
    assert st is not None  # callers list classrooms with a terminal only
    return s.Terminal(
        school=c.school.code,
        school_name=c.school.name,
        classroom=c.room.id,
        classroom_name=c.room.name,
        terminal=st.terminal,
        status=c.status,
        since=_ts_or_none(c.since),
        offline_reason=c.offline_reason,
        school_uplink_down=c.uplink_down,
        last_seen=_ts_or_none(st.last_seen),
        last_heartbeat_at=_ts_or_none(st.last_heartbeat_at),
        heartbeats=st.heartbeats,
        uptime_seconds=st.uptime_seconds,
        link_speed_mbps=st.link_speed_mbps if st.online else None,
        last_link_speed_mbps=st.last_link_speed_mbps,
        duplex=st.duplex,
        nic=st.nic,
        ip=st.ip,
        mac=st.mac,
        agent_version=st.agent_version,
        cpu_percent=st.cpu_percent,
        memory_used_bytes=st.memory_used_bytes,
        memory_total_bytes=st.memory_total_bytes,
        disk_used_bytes=st.disk_used_bytes,
        disk_total_bytes=st.disk_total_bytes,
        expected_online=c.expected_online,
        lesson=c.period,
        offline_in_lesson=c.offline_in_lesson,
    )


def _offline_classroom(c: ClassroomNow) -> s.OfflineClassroom:
    st = c.terminal
    reason = c.offline_reason
    # Callers list offline terminals only.
    assert st is not None
    assert reason is not None
    return s.OfflineClassroom(
        school=c.school.code,
        school_name=c.school.name,
        classroom=c.room.id,
        classroom_name=c.room.name,
        terminal=st.terminal,
        status="unknown" if c.uplink_down else "offline",
        reason=reason,
        since=_ts_or_none(c.since),
        last_seen=_ts_or_none(st.last_seen),
        school_uplink_down=c.uplink_down,
        alerting=bool(c.offline_in_lesson),
        lesson=c.period,
    )


# -- availability reports -------------------------------------------------------------------


def _figures(a: Availability) -> dict[str, Any]:
    return {
        "online_rate": a.online_rate,
        "usage_rate": a.usage_rate,
        "power_on_rate": a.power_on_rate,
        "online_minutes": a.online_seconds / 60,
        "lesson_minutes": a.lesson_seconds / 60,
        "lessons_used": a.lessons_used,
        "lessons": a.lessons,
        "terminals_on": a.terminals_on,
        "terminal_days": a.terminal_days,
    }


def _daily(report: Report) -> s.DailyAvailability:
    schools = []
    for sf in report.schools:
        the_day = sf.days[0]
        schools.append(
            s.SchoolDayFigures(
                **_figures(sf.totals),
                school=sf.school.code,
                school_name=sf.school.name,
                kind=sf.school.kind,
                is_school_day=the_day.is_school_day,
                day_reason=the_day.reason.value,
                term=the_day.term,
                calendar_fallback=the_day.calendar_fallback,
                classrooms=[
                    s.ClassroomDayFigures(
                        **_figures(r.totals),
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
        as_of=datetime.fromtimestamp(report.as_of, UTC),
        district=s.Figures(**_figures(report.totals)),
        schools=schools,
    )


def _monthly(report: Report, month: str) -> s.MonthlyAvailability:
    return s.MonthlyAvailability(
        month=month,
        first_day=report.first_day,
        last_day=report.last_day,
        complete=report.complete,
        as_of=datetime.fromtimestamp(report.as_of, UTC),
        district=s.Figures(**_figures(report.totals)),
        schools=[
            s.SchoolMonthFigures(
                **_figures(sf.totals),
                school=sf.school.code,
                school_name=sf.school.name,
                kind=sf.school.kind,
                school_days=sf.school_days,
                calendar_fallback_days=sf.calendar_fallback_days,
                classrooms=[
                    s.ClassroomMonthFigures(
                        **_figures(r.totals),
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


_FIGURE_COLUMNS = tuple(s.Figures.model_fields)
_DAILY_COLUMNS = (
    "level",
    "school",
    "school_name",
    "classroom",
    "classroom_name",
    "terminal",
    "day",
    "is_school_day",
    "day_reason",
    "switched_on",
    *_FIGURE_COLUMNS,
)
_MONTHLY_COLUMNS = (
    "level",
    "school",
    "school_name",
    "classroom",
    "classroom_name",
    "terminal",
    "month",
    "school_days",
    "days_switched_on",
    *_FIGURE_COLUMNS,
)


def _daily_rows(body: s.DailyAvailability) -> Iterable[dict[str, Any]]:
    day = body.day.isoformat()
    yield {"level": "district", "day": day, **body.district.model_dump()}
    for sc in body.schools:
        school = {"school": sc.school, "school_name": sc.school_name, "day": day}
        day_info = {"is_school_day": sc.is_school_day, "day_reason": sc.day_reason}
        yield {"level": "school", **school, **day_info, **_only_figures(sc)}
        for room in sc.classrooms:
            yield {
                "level": "classroom",
                **school,
                **day_info,
                "classroom": room.classroom,
                "classroom_name": room.classroom_name,
                "terminal": room.terminal,
                "switched_on": room.switched_on,
                **_only_figures(room),
            }


def _monthly_rows(body: s.MonthlyAvailability) -> Iterable[dict[str, Any]]:
    yield {"level": "district", "month": body.month, **body.district.model_dump()}
    for sc in body.schools:
        school = {"school": sc.school, "school_name": sc.school_name, "month": body.month}
        yield {"level": "school", **school, "school_days": sc.school_days, **_only_figures(sc)}
        for room in sc.classrooms:
            yield {
                "level": "classroom",
                **school,
                "school_days": sc.school_days,
                "classroom": room.classroom,
                "classroom_name": room.classroom_name,
                "terminal": room.terminal,
                "days_switched_on": room.days_switched_on,
                **_only_figures(room),
            }


def _only_figures(model: s.Figures) -> dict[str, Any]:
    return {name: getattr(model, name) for name in _FIGURE_COLUMNS}


def _csv_cell(value: object) -> str:
    # Empty for "no figure" (a rate on a day without lessons), never "None"; floats in full
    # (repr) so that the CSV carries exactly the JSON's numbers.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_response(
    filename: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]
) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    # The BOM makes Excel (which assumes the ANSI code page, GBK in China, otherwise) read
    # UTF-8, so that school and classroom names show as written.
    return Response(
        out.getvalue().encode("utf-8-sig"),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == "text/csv" for part in accept.split(","))


def _event(e: Event) -> s.EventOut:
    return s.EventOut(
        at=datetime.fromtimestamp(e.at, UTC),
        kind=e.kind,
        switch=e.device_id,
        school=e.school,
        interface=e.interface,
        classroom=e.classroom,
        message=e.message,
        details=dict(e.details),
    )


# -- query parameters -----------------------------------------------------------------------


def _invalid(name: str, value: str | None, message: str) -> NoReturn:
    """Reject a query parameter in FastAPI's own 422 format, with a message that says why."""
    raise RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "value_error", "input": value}]
    )


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def _parse_day(value: str) -> date:
    text = value.strip()
    try:
        if _DAY.fullmatch(text) is None:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        _invalid("day", value, f"day must be a date YYYY-MM-DD, e.g. 2026-09-07; got {value!r}")


def _parse_month(value: str) -> tuple[int, int]:
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        _invalid("month", value, f"month must be YYYY-MM, e.g. 2026-09; got {value!r}")
    return int(match[1]), int(match[2])


def _parse_time(name: str, value: str | None) -> float | None:
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
            _invalid(name, value, f"{name} must be a finite number of Unix seconds")
        return seconds
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        _invalid(name, value, f"{name} must be {_TIME_HELP}; got {value!r}")
    if when.tzinfo is None:
        # A bare local time is ambiguous (the server may run in UTC, the reader in +08:00).
        _invalid(
            name,
            value,
            f"{name} has no UTC offset; add one, e.g. {text}+08:00 for Beijing time or {text}Z",
        )
    return when.timestamp()
