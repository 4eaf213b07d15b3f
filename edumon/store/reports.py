"""The store's report queries: the daily availability roll-up and the monitoring runs.

Availability itself is computed from the TERMINAL_ONLINE/OFFLINE events (edumon.reports), not
from heartbeat samples: those are thinned to one per terminal per 5 minutes (docs/storage.md).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import func, select

from edumon.domain.models import EventKind
from edumon.domain.rollups import InterfaceRollup
from edumon.store import tables as t
from edumon.store.base import StoreBase, chunks
from edumon.store.protocol import (
    AgentReportRun,
    AgentReportsRecorded,
    ClassroomAvailability,
    SenderPosition,
)
from edumon.store.reads import rollup_of
from edumon.store.timestamps import from_db, to_db


class StoreReports(StoreBase):
    """Report queries of ``Store``."""

    async def availability(
        self,
        since_day: date,
        until_day: date,
        school: str | None = None,
        classroom: str | None = None,
    ) -> list[ClassroomAvailability]:
        """Daily roll-up rows for days in [since_day, until_day), ordered by day and classroom.

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
                terminal=r.terminal,
                lesson_seconds=r.lesson_seconds,
                monitored_seconds=r.monitored_seconds,
                online_seconds=r.online_seconds,
                lessons=r.lessons,
                lessons_monitored=r.lessons_monitored,
                lessons_used=r.lessons_used,
                terminal_days=r.terminal_days,
                terminal_days_monitored=r.terminal_days_monitored,
                terminals_on=r.terminals_on,
                switched_on=bool(r.switched_on),
                computed_at=from_db(r.computed_at),
            )
            for r in rows
        ]

    async def rolled_up_days(self, since_day: date, until_day: date) -> set[date]:
        """The days in [since_day, until_day) with at least one roll-up row.

        Raises:
            StoreError: the database failed.
        """
        c = t.classroom_availability_daily.c
        query = select(c.day).where(c.day >= since_day, c.day < until_day).distinct()
        return {r.day for r in await self._read_in_one_hop("reading rolled-up days", query)}

    async def monitor_runs(self, since: float, until: float) -> list[tuple[float, float]]:
        """When edumon was monitoring: (start, last known alive) of the runs overlapping
        [since, until), oldest first.

        Raises:
            StoreError: the database failed.
        """
        c = t.monitor_runs.c
        query = (
            select(c.started_at, c.alive_until)
            .where(c.started_at < to_db(until), c.alive_until >= to_db(since))
            .order_by(c.started_at)
        )
        rows = await self._read_in_one_hop("reading monitoring runs", query)
        return [(from_db(r.started_at), from_db(r.alive_until)) for r in rows]

    async def first_run_started(self) -> float | None:
        """When the first recorded monitoring run started; None before any.

        Raises:
            StoreError: the database failed.
        """
        query = select(func.min(t.monitor_runs.c.started_at))
        async with self._guard("reading monitoring runs"), self._engine.connect() as conn:
            first = (await conn.execute(query)).scalar_one_or_none()
        return None if first is None else from_db(first)

    async def sender_positions(self) -> list[SenderPosition]:
        """Every MQTT sender's newest stored message (see ``write``'s ``positions``).

        Raises:
            StoreError: the database failed.
        """
        query = select(t.sender_positions)
        async with self._guard("reading sender positions"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            SenderPosition(
                school=r.school,
                role=r.role,
                sender=r.sender,
                boot_id=r.boot_id,
                birth_seq=int(r.birth_seq),
                seq=int(r.seq),
                observed_at=float(r.observed_at),
                at=from_db(r.at),
            )
            for r in rows
        ]

    async def terminals_left_online(self, since: float) -> list[tuple[str, str, float]]:
        """Terminals whose newest TERMINAL_ONLINE/OFFLINE event since ``since`` is ONLINE:
        (school, terminal, at). Their online interval is open in the store: the daemon stopped
        (or was killed) while they were online (``TerminalsState.restore_online``).

        Raises:
            StoreError: the database failed.
        """
        e = t.events
        kinds = (EventKind.TERMINAL_ONLINE.value, EventKind.TERMINAL_OFFLINE.value)
        newest = func.row_number().over(
            partition_by=(e.c.school, e.c.device_id), order_by=(e.c.at.desc(), e.c.id.desc())
        )
        ranked = (
            select(e.c.school, e.c.device_id, e.c.kind, e.c.at, newest.label("n"))
            .where(e.c.kind.in_(kinds), e.c.at >= to_db(since))
            .subquery()
        )
        query = select(ranked.c.school, ranked.c.device_id, ranked.c.at).where(
            ranked.c.n == 1, ranked.c.kind == EventKind.TERMINAL_ONLINE.value
        )
        async with self._guard("reading terminals left online"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(school, terminal, from_db(at)) for school, terminal, at in rows if school]

    async def agent_reports_recorded(self, since: float) -> AgentReportsRecorded:
        """The school agents' reports recorded with a poll time from ``since`` on.

        Seqs come back as runs of consecutive ones (one per boot, unless some are missing), so
        start-up reads a few rows per agent whatever the number of reports.

        Raises:
            StoreError: the database failed.
        """
        r = t.agent_reports
        recent = r.c.observed_at >= to_db(since)
        # Gaps and islands: within a boot, seq minus its rank is constant along a run.
        rank = func.row_number().over(partition_by=(r.c.agent, r.c.boot_id), order_by=r.c.seq)
        ranked = (
            select(r.c.agent, r.c.boot_id, r.c.seq, (r.c.seq - rank).label("run"))
            .where(recent)
            .subquery()
        )
        runs = select(
            ranked.c.agent, ranked.c.boot_id, func.min(ranked.c.seq), func.max(ranked.c.seq)
        ).group_by(ranked.c.agent, ranked.c.boot_id, ranked.c.run)
        newest = select(r.c.subject, func.max(r.c.observed_at)).where(recent).group_by(r.c.subject)
        async with self._guard("reading school agents' reports"), self._engine.connect() as conn:
            run_rows = (await conn.execute(runs)).all()
            newest_rows = (await conn.execute(newest)).all()
        return AgentReportsRecorded(
            runs=tuple(AgentReportRun(a, b, int(lo), int(hi)) for a, b, lo, hi in run_rows),
            newest={subject: from_db(at) for subject, at in newest_rows},
        )

    async def port_rollups(
        self, ports: Collection[tuple[str, str]], since: float, until: float
    ) -> list[InterfaceRollup]:
        """The 5-minute roll-ups of some ports with buckets starting in [since, until).

        Raises:
            StoreError: the database failed.
        """
        wanted = set(ports)
        devices = sorted({device for device, _ in wanted})
        c = t.interface_rollups.c
        out: list[InterfaceRollup] = []
        async with self._guard("reading port roll-ups"), self._engine.connect() as conn:
            for some in chunks(devices, 500):
                query = select(t.interface_rollups).where(
                    c.device_id.in_(list(some)),
                    c.bucket_start >= to_db(since),
                    c.bucket_start < to_db(until),
                )
                for r in (await conn.execute(query)).all():
                    if (r.device_id, r.interface) not in wanted:
                        continue
                    out.append(rollup_of(r))
        return out
