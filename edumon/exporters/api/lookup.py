"""What a request names, found or answered with a 404 or 503 that says what to do instead."""

from __future__ import annotations

import logging
from typing import NoReturn

from fastapi import HTTPException

from edumon.domain.inventory import SchoolRef
from edumon.domain.state import DeviceState
from edumon.errors import StoreError
from edumon.runtime import Runtime

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


def school_or_404(runtime: Runtime, code: str) -> SchoolRef:
    """The school with this code.

    Raises:
        HTTPException: 404, no such school.
    """
    school = runtime.state.inventory.schools.get(code)
    if school is None:
        raise HTTPException(
            404, f"no school with code {code!r}; GET {API_PREFIX}/schools lists them"
        )
    return school


def switch_or_404(runtime: Runtime, switch_id: str) -> DeviceState:
    """The switch with this id.

    Raises:
        HTTPException: 404, no such switch.
    """
    dev = runtime.state.devices.get(switch_id)
    if dev is None:
        raise HTTPException(
            404, f"no switch with id {switch_id!r}; GET {API_PREFIX}/switches lists them"
        )
    return dev


def store_unavailable(doing: str, exc: StoreError) -> NoReturn:
    """Log a failed database read and answer 503.

    Raises:
        HTTPException: 503, always.
    """
    log.warning("%s failed: %s", doing, exc)
    raise HTTPException(503, "the database is unavailable; try again later") from exc
