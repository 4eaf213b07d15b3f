"""The store's report queries: heartbeat times and daily availability rows."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from edumon.store import tables as t
from edumon.store.base import StoreBase
from edumon.store.protocol import ClassroomAvailability
from edumon.store.timestamps import epoch_microseconds, from_db, to_db


class StoreReports(StoreBase):
    """Report queries of ``Store``."""

    async def terminal_seen_intervals(
        self,
        school: str | None = None,
        *,
        since: float,
        until: float,
        classroom: str | None = None,
    ) -> dict[str, list[float]]:
        """When each classroom's heartbeats arrived in [since, until), for availability.

        A terminal was online from a heartbeat until the next one if they are closer than the
        offline timeout. To know the state at ``since``, start the window one timeout earlier.

        Args:
            school: only this school's classrooms.
            since: window start (Unix seconds), inclusive.
            until: window end (Unix seconds), exclusive.
            classroom: only this classroom.

        Returns:
            Receipt times (Unix seconds) in ascending order, keyed by classroom id; classrooms
            without a heartbeat in the window are absent.

        Raises:
            ValueError: until is before since.
            StoreError: the database failed.
        """
        if until < since:
            raise ValueError("until must not be before since")
        c = t.terminal_samples.c
        micros = epoch_microseconds(c.at, self._dialect).label("micros")
        query = select(c.classroom, micros).where(c.at >= to_db(since), c.at < to_db(until))
        if school is not None:
            query = query.where(c.school == school)
        if classroom is not None:
            query = query.where(c.classroom == classroom)
        # Ordered by time alone, so each of the three (…, at) indexes yields rows without a
        # sort; grouping by classroom keeps that order.
        query = query.order_by(c.at)
        seen: dict[str, list[float]] = {}
        async with self._guard("reading terminal heartbeats"), self._engine.connect() as conn:
            result = await conn.execute(query)
            for room, us in result:
                times = seen.get(room)
                if times is None:
                    times = seen[room] = []
                times.append(us / 1_000_000)
        return seen

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
