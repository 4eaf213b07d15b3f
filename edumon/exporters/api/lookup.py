"""What a request names, found or answered with a 404 or 503 that says what to do instead.

Access (``edumon.exporters.api.access``) is applied here: a school, switch, classroom or terminal
the request may not see answers the very 404 an unknown one does, so that a school's token
cannot even learn which codes exist elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import NoReturn

from fastapi import HTTPException

from edumon.domain.inventory import SchoolRef
from edumon.domain.state import DeviceState
from edumon.errors import StoreError
from edumon.exporters.api.per_school import SchoolsNow
from edumon.runtime import Runtime

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

MAX_SHOWN = 64
"""At most this many characters of a code a request named are repeated in its 404."""

Visible = frozenset[str] | None
"""The schools a request may see (``access.visible_schools``); None: every school."""


def not_found(zh: str, en: str) -> NoReturn:
    """Answer 404 with a "中文 / English" detail.

    Raises:
        HTTPException: 404, always.
    """
    raise HTTPException(404, f"{zh} / {en}")


def _may_see(visible: Visible, school: str | None) -> bool:
    # A switch of no school (the district's core) is the district's: only the district role.
    return visible is None or (school is not None and school in visible)


def school_or_404(runtime: Runtime, code: str, visible: Visible = None) -> SchoolRef:
    """The school with this code.

    Raises:
        HTTPException: 404, no such school (or not one this request may see).
    """
    school = runtime.state.inventory.schools.get(code)
    if school is None or not _may_see(visible, code):
        not_found(
            f"没有代码为 {code[:MAX_SHOWN]!r} 的学校",
            f"no school with code {code[:MAX_SHOWN]!r}; GET {API_PREFIX}/schools lists them",
        )
    return school


def schools_or_404(runtime: Runtime, codes: list[str] | None, visible: Visible) -> list[str] | None:
    """The schools a ``school`` filter names (each checked), or the visible ones without it.

    Returns:
        The codes to show, or None for every school (no filter and the district role).

    Raises:
        HTTPException: 404 for an unknown or hidden code.
    """
    if codes is None:
        if visible is None:
            return None
        return [c for c in runtime.state.inventory.schools if c in visible]
    for code in codes:
        school_or_404(runtime, code, visible)
    return codes


def switch_school(runtime: Runtime, switch_id: str) -> str | None:
    """The school a switch belongs to (None: the district's own, e.g. the core)."""
    dev = runtime.state.devices.get(switch_id)
    if dev is not None and dev.school is not None:
        return dev.school
    return runtime.state.inventory.switch_school.get(switch_id)


def port_school(runtime: Runtime, dev: DeviceState, port: str) -> str | None:
    """The school a switch port serves: its owner's (an uplink, a classroom), else the
    switch's own school."""
    owner = runtime.state.inventory.owner(dev.device_id, port)
    return owner.school if owner is not None else dev.school


def switch_visible(
    runtime: Runtime, views: SchoolsNow | None, switch_id: str, visible: Visible
) -> bool:
    """Whether a request may see this switch: one of its schools', or one its schools' pages
    list (the district switch their uplinks hang off)."""
    if _may_see(visible, switch_school(runtime, switch_id)):
        return True
    if visible is None or views is None:
        return False
    return any(
        sc is not None and switch_id in sc.switches for sc in map(views.school, sorted(visible))
    )


def switch_or_404(
    runtime: Runtime, switch_id: str, visible: Visible = None, views: SchoolsNow | None = None
) -> DeviceState:
    """The switch with this id.

    Raises:
        HTTPException: 404, no such switch (or not one this request may see).
    """
    dev = runtime.state.devices.get(switch_id)
    if dev is None or not switch_visible(runtime, views, switch_id, visible):
        not_found(
            f"没有编号为 {switch_id[:MAX_SHOWN]!r} 的交换机",
            f"no switch with id {switch_id[:MAX_SHOWN]!r}; GET {API_PREFIX}/switches lists them",
        )
    return dev


def classroom_school(runtime: Runtime, classroom: str) -> SchoolRef | None:
    """The school of a classroom (classroom ids are unique in the district)."""
    for ref in runtime.state.inventory.schools.values():
        if any(r.id == classroom for r in ref.classrooms):
            return ref
    return None


def terminal_schools(runtime: Runtime, terminal: str) -> list[str]:
    """The schools with a terminal of this id (ids are unique within a school only)."""
    terminals = runtime.terminals
    if terminals is None:
        return []
    return sorted({r.school for r in terminals.inventory if r.terminal == terminal})


def visible_codes(codes: Collection[str], visible: Visible) -> list[str]:
    """Those of ``codes`` the request may see."""
    return [c for c in codes if _may_see(visible, c)]


def store_unavailable(doing: str, exc: StoreError) -> NoReturn:
    """Log a failed database read and answer 503.

    Raises:
        HTTPException: 503, always.
    """
    log.warning("%s failed: %s", doing, exc)
    raise HTTPException(
        503, "数据库暂不可用，请稍后再试 / the database is unavailable; try again later"
    ) from exc
