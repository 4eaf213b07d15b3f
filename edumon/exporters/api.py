"""The status API: district, schools, switches, events and compliance under /api/v1, plus /metrics.

Every handler is ``async``: the network state is owned by the event loop (the collector
mutates it between awaits), so reading it on the loop, not in a worker thread, always sees
a consistent snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import Annotated, NoReturn

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client.exposition import choose_encoder

from edumon.domain.checks import CheckName, CheckResult, SchoolCompliance, Verdict, check_district
from edumon.domain.inventory import SchoolRef
from edumon.domain.models import Event, EventKind, OperStatus
from edumon.domain.state import DeviceState, InterfaceState
from edumon.errors import StoreError
from edumon.exporters import schemas as s
from edumon.exporters.metrics import create_registry
from edumon.runtime import Runtime

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_EVENTS = 1000
# /readyz answers within this even if the database hangs (the store's own ping is shorter).
READY_TIMEOUT_SECONDS = 10.0
_TIME_HELP = "ISO-8601 with a UTC offset (2024-09-01T08:00:00+08:00, or Z for UTC) or Unix seconds"


def create_app(runtime: Runtime) -> FastAPI:
    """The HTTP app: the status API, health checks and Prometheus /metrics.

    Args:
        runtime: the daemon's live parts; handlers only read from it.

    Returns:
        A FastAPI app with its own metrics registry; OpenAPI at /openapi.json and /docs.
    """
    app = FastAPI(
        title="edumon",
        summary="Status of a district's school network links against its bandwidth targets",
        version="1",
    )
    registry = create_registry(runtime)
    app.include_router(_api_router(runtime), prefix=API_PREFIX)

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


def _api_router(runtime: Runtime) -> APIRouter:
    router = APIRouter()
    state = runtime.state
    inventory = state.inventory

    def compliance() -> dict[str, SchoolCompliance]:
        return check_district(state, runtime.config.targets)

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
            events=s.EventCounts(total=sum(by_kind.values()), by_kind=by_kind),
            generated_at=datetime.now(UTC),
        )

    @router.get("/schools", response_model=s.SchoolList, tags=["schools"])
    async def schools() -> s.SchoolList:
        """Every school with its verdict, uplink and number of failing classrooms."""
        results = compliance()
        rows = []
        for code, school in inventory.schools.items():
            sc = results[code]
            rows.append(
                s.SchoolRow(
                    code=code,
                    name=school.name,
                    kind=school.kind,
                    verdict=sc.verdict,
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
                )
            )
        base = _uplink(runtime, ref)
        switch_ids = {sid for sid, sw in runtime.config.switches.items() if sw.school == code}
        switch_ids.add(ref.uplink_switch)
        switch_ids.update(r.switch for r in ref.classrooms if r.switch is not None)
        return s.SchoolDetail(
            code=code,
            name=ref.name,
            kind=ref.kind,
            verdict=sc.verdict,
            uplink=s.UplinkDetail(**base.model_dump(), checks=[_check(r) for r in sc.uplink]),
            classrooms=classrooms,
            switches=[
                _switch(runtime, state.devices[sid])
                for sid in sorted(switch_ids)
                if sid in state.devices
            ],
        )

    @router.get("/switches", response_model=s.SwitchList, tags=["switches"])
    async def switches() -> s.SwitchList:
        """Every switch: reachability, uptime, reboots, last error and poll statistics."""
        return s.SwitchList(
            switches=[_switch(runtime, state.devices[sid]) for sid in sorted(state.devices)]
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

    return router


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


def _switch(runtime: Runtime, dev: DeviceState) -> s.Switch:
    # Only the host is taken from the switch's configuration; its SNMP credentials are
    # never read here.
    sw = runtime.config.switches.get(dev.device_id)
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
