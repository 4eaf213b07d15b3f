"""The store's report queries: daily availability rows.

Availability itself is computed from the TERMINAL_ONLINE/OFFLINE events (edumon.reports), not
from heartbeat samples: those are thinned to one per terminal per 5 minutes (docs/storage.md).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from edumon.store import tables as t
from edumon.store.base import StoreBase
from edumon.store.protocol import ClassroomAvailability
from edumon.store.timestamps import from_db


class StoreReports(StoreBase):
    """Report queries of ``Store``."""

    async def availability(
        self,
        since_day: date,
        until_day: date,
        school: str | None = None,
        classroom: str | None = None,
    ) -> list[ClassroomAvailability]:
        """Daily availability for days in [since_day, until_day), ordered by day and classroom.

        Raises:
            StoreError: the database failed.
        """
        c = t.classroom_availability_daily.c
        query = select(t.classroom_availability_daily).where(c.day >= since_day, c.day < until_day)
        if school is not None:
            query = query.where(c.school == school)
        if classroom is not None:
            query = query.where(c.classroom == classroom)
        query = query.order_by(c.day, c.classroom)
        async with self._guard("reading availability"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ClassroomAvailability(
                day=r.day,
                school=r.school,
                classroom=r.classroom,
                scheduled_minutes=r.scheduled_minutes,
                online_minutes=r.online_minutes,
                scheduled_lessons=r.scheduled_lessons,
                lessons_with_terminal_on=r.lessons_with_terminal_on,
                switched_on=bool(r.switched_on),
                computed_at=from_db(r.computed_at),
            )
            for r in rows
        ]
