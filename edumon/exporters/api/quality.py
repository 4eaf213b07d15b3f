"""GET /api/v1/data-quality: where the network and the terminals contradict the inventory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from edumon.domain.quality import KINDS, QualityKind, QualityWarning
from edumon.exporters.api.access import visible_schools
from edumon.exporters.api.lookup import API_PREFIX
from edumon.exporters.api.mapping import local_time
from edumon.exporters.api.queries import DEFAULT_LIMIT, Limit, Offset, invalid, page_of
from edumon.exporters.quality_schemas import QualityCounts, QualityList, QualityWarningOut
from edumon.quality_view import data_quality
from edumon.runtime import Runtime

KIND_NAMES: dict[str, str] = {
    "terminal_online_port_down": "终端在线但端口断开",
    "speed_mismatch": "终端网卡速率与端口不符",
    "two_classrooms_one_port": "两个教室同一端口",
    "terminal_wrong_school": "终端从其他学校上报",
}

Schools = Annotated[
    list[str] | None,
    Query(description="Only these schools (codes; repeat for several: school=a&school=b)"),
]
Kinds = Annotated[
    list[QualityKind] | None,
    Query(description="Only these kinds (repeat for several: kind=a&kind=b)"),
]


def _names(runtime: Runtime) -> tuple[dict[str, str], dict[str, str]]:
    schools = runtime.state.inventory.schools
    rooms = {room.id: room.name for ref in schools.values() for room in ref.classrooms}
    return {code: ref.name for code, ref in schools.items()}, rooms


def _out(
    runtime: Runtime, w: QualityWarning, schools: dict[str, str], rooms: dict[str, str]
) -> QualityWarningOut:
    def room(classroom: str | None) -> str | None:
        return None if classroom is None else rooms.get(classroom, classroom)

    def school(code: str | None) -> str | None:
        return None if code is None else schools.get(code, code)

    return QualityWarningOut(
        kind=w.kind,
        kind_name=KIND_NAMES.get(w.kind, w.kind),
        school=w.school,
        school_name=schools.get(w.school, w.school),
        classroom=w.classroom,
        classroom_name=room(w.classroom),
        switch=w.switch,
        # Switches have no configured display name: the id is the name people use.
        switch_name=w.switch,
        port=w.port,
        terminal=w.terminal,
        other_school=w.other_school,
        other_school_name=school(w.other_school),
        other_classroom=w.other_classroom,
        other_classroom_name=room(w.other_classroom),
        port_speed_mbps=w.port_speed_mbps,
        terminal_speed_mbps=w.terminal_speed_mbps,
        since=local_time(runtime, w.since),
        message=w.message,
        message_en=w.message_en,
        fix=w.fix,
        fix_en=w.fix_en,
    )


def quality_router(runtime: Runtime, clock: Callable[[], float]) -> APIRouter:
    """The router; mounted under /api/v1 by ``create_app``."""
    router = APIRouter()

    @router.get(
        "/data-quality",
        response_model=QualityList,
        tags=["data quality"],
        responses={404: {"description": "No school with this code (or not one this token sees)"}},
    )
    async def quality(
        request: Request,
        school: Schools = None,
        kind: Kinds = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> QualityList:
        """Contradictions between the switches, the terminals and the inventory, each with the
        inventory row to fix (数据质量告警): a terminal online while its port is down, a NIC
        speed unlike its port's, two classrooms on one port, a terminal reporting from another
        school. docs/data-quality.md gives the rules (each must hold for a poll interval)."""
        visible = visible_schools(request)
        known = runtime.state.inventory.schools
        if school:
            for code in school:
                if "\x00" in code:
                    invalid("school", code, "NUL 字符无效 / school must not contain NUL bytes")
                if code not in known or (visible is not None and code not in visible):
                    raise HTTPException(
                        404,
                        f"没有代码为 {code!r} 的学校 / no school with code {code!r}; "
                        f"GET {API_PREFIX}/schools lists them",
                    )
            wanted: list[str] | frozenset[str] | None = list(dict.fromkeys(school))
        else:
            wanted = visible
        now = clock()
        warnings = data_quality(runtime, wanted, now=now)
        if kind:
            warnings = [w for w in warnings if w.kind in kind]
        tally = Counter(w.kind for w in warnings)
        schools, rooms = _names(runtime)
        return QualityList(
            generated_at=local_time(runtime, now),
            counts=QualityCounts(total=len(warnings), **{k: tally.get(k, 0) for k in KINDS}),
            warnings=[_out(runtime, w, schools, rooms) for w in warnings[offset : offset + limit]],
            page=page_of(limit, offset, len(warnings)),
        )

    return router
