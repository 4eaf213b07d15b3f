"""The store's reads: events and the history of switches, ports and terminals."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, func, or_, select

from edumon.domain.models import (
    DeviceSample,
    Event,
    EventKind,
    OperStatus,
    TerminalSample,
)
from edumon.domain.rollups import InterfaceRollup
from edumon.store import tables as t
from edumon.store.base import StoreBase
from edumon.store.timestamps import from_db, to_db

_Query = TypeVar("_Query", bound=Select[Any])

"""How long a read waits for a lock (WAL readers rarely wait at all)."""


@dataclass(frozen=True, slots=True)
class EventPosition:
    """Where an event sits in the newest-first order: its time as stored, then its id."""

    at: datetime
    id: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event with its position (for keyset paging)."""

    position: EventPosition
    event: Event


def _within(
    query: _Query, at: ColumnElement[datetime], since: float | None, until: float | None
) -> _Query:
    """The query narrowed to times in [since, until); either end may be open (None)."""
    if since is not None:
        query = query.where(at >= to_db(since))
    if until is not None:
        query = query.where(at < to_db(until))
    return query


def rollup_of(r: Row[Any]) -> InterfaceRollup:
    """One row of interface_rollups as the domain's roll-up."""
    return InterfaceRollup(
        device_id=r.device_id,
        interface=r.interface,
        bucket_start=from_db(r.bucket_start),
        bucket_seconds=r.bucket_seconds,
        polls=r.polls,
        up_polls=r.up_polls,
        in_bps=r.in_bps,
        out_bps=r.out_bps,
        in_bps_max=r.in_bps_max,
        out_bps_max=r.out_bps_max,
        max_utilisation=r.max_utilisation,
        speed_mbps=r.speed_mbps,
        oper_status=OperStatus(r.oper_status),
        last_at=from_db(r.last_at),
    )


def _event(r: Row[Any]) -> Event:
    """An event as the events table stores it."""
    return Event(
        at=from_db(r.at),
        kind=EventKind(r.kind),
        device_id=r.device_id,
        school=r.school,
        interface=r.interface,
        classroom=r.classroom,
        message=r.message,
        details=dict(r.details),
    )


def _one_or_many(
    column: ColumnElement[str], value: str | Collection[str] | None
) -> ColumnElement[bool] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return column == str(value)
    return column.in_([str(v) for v in value])


def _event_filters(
    query: _Query,
    school: str | Collection[str] | None,
    kind: EventKind | str | Collection[EventKind | str] | None,
    device: str | None,
    since: float | None,
    until: float | None,
) -> _Query:
    """The query narrowed to the events of these schools, kinds, device and times."""
    c = t.events.c
    for clause in (
        _one_or_many(c.school, school),
        _one_or_many(c.kind, kind),
        _one_or_many(c.device_id, device),
    ):
        if clause is not None:
            query = query.where(clause)
    return _within(query, c.at, since, until)


# Devices named in one IN (...) list: well under SQLite's bound-parameter limit.
_IN_CHUNK = 500


class StoreReads(StoreBase):
    """Reads of ``Store``."""

    async def events(
        self,
        *,
        school: str | None = None,
        kind: EventKind | str | None = None,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        """Events newest first, filtered.

        Args:
            school: only this school's events.
            kind: only events of this kind.
            device: only events of this switch.
            since: only events at or after this time (Unix seconds).
            until: only events before this time (Unix seconds).
            limit: at most this many events.
            offset: skip this many (newest) events first, for paging.

        Raises:
            ValueError: limit or offset is negative.
            StoreError: the database failed.
        """
        page = await self.event_page(
            school=school,
            kind=kind,
            device=device,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        return [e.event for e in page]

    async def event_page(
        self,
        *,
        school: str | Collection[str] | None = None,
        kind: EventKind | str | Collection[EventKind | str] | None = None,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: EventPosition | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredEvent]:
        """Events newest first, filtered, each with its position for the next page.

        Pages by key: ``before`` the last position of the previous page, the query reads one
        index range (events(at, id) or the filter's (school|kind|device_id, at, id)) from
        there, whatever the table's size, and events sharing a timestamp are neither skipped
        nor repeated. ``offset`` skips rows one by one and is kept for small offsets only.

        Args:
            school, kind, device, since, until: as ``events``; ``school`` and ``kind`` may
                also be several (any of them).
            before: only events older than this position (at, then id).
            limit: at most this many events.
            offset: skip this many events first.

        Raises:
            ValueError: limit or offset is negative.
            StoreError: the database failed.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        c = t.events.c
        query = _event_filters(select(t.events), school, kind, device, since, until)
        if before is not None:
            # at <= A bounds the index range; the OR orders ties by id.
            query = query.where(c.at <= before.at, or_(c.at < before.at, c.id < before.id))
        query = query.order_by(c.at.desc(), c.id.desc()).limit(limit)
        if offset:
            query = query.offset(offset)
        rows = await self._read_in_one_hop("reading events", query)
        return [StoredEvent(EventPosition(r.at, r.id), _event(r)) for r in rows]

    async def event_count(
        self,
        *,
        school: str | Collection[str] | None = None,
        kind: EventKind | str | Collection[EventKind | str] | None = None,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many events match the filters of ``event_page`` (its pages' total).

        Unlike a page, a count is not bounded by a limit: a district's months of events are
        millions of rows, so it runs on the async engine (a worker thread for SQLite) and only
        the request waits for it, never the event loop.

        Raises:
            StoreError: the database failed.
        """
        matching = _event_filters(select(t.events.c.id), school, kind, device, since, until)
        query = select(func.count()).select_from(matching.subquery())
        async with self._guard("counting events"), self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def last_events_before(
        self,
        *,
        school: str,
        devices: Collection[str],
        kinds: Collection[EventKind],
        before: float,
    ) -> list[Event]:
        """The newest event of each kind before ``before`` for each of a school's devices.

        One query however many devices (a report of a school whose terminals have been silent
        for a week asked two per terminal before): the school's events of those kinds before
        the time, ranked per device and kind, the first of each kept.

        Raises:
            StoreError: the database failed.
        """
        if not devices or not kinds:
            return []
        c = t.events.c
        out: list[Event] = []
        wanted = sorted(devices)
        for i in range(0, len(wanted), _IN_CHUNK):
            ranked = (
                select(
                    t.events,
                    func.row_number()
                    .over(partition_by=(c.device_id, c.kind), order_by=(c.at.desc(), c.id.desc()))
                    .label("newest"),
                )
                .where(
                    c.school == school,
                    c.kind.in_([str(k) for k in kinds]),
                    c.device_id.in_(wanted[i : i + _IN_CHUNK]),
                    c.at < to_db(before),
                )
                .subquery()
            )
            rows = await self._read_in_one_hop(
                "reading events", select(ranked).where(ranked.c.newest == 1)
            )
            out += [_event(r) for r in rows]
        return out

    async def interface_history(
        self,
        device_id: str,
        interface: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[InterfaceRollup]:
        """One interface's 5-minute roll-ups with buckets starting in [since, until), oldest
        first; the newest ``limit`` of them (raw polls are in the time-series database).

        Raises:
            ValueError: limit is negative.
            StoreError: the database failed.
        """
        if limit < 0:
            raise ValueError("limit must not be negative")
        c = t.interface_rollups.c
        query = select(t.interface_rollups).where(
            c.device_id == device_id, c.interface == interface
        )
        query = _within(query, c.bucket_start, since, until)
        query = query.order_by(c.bucket_start.desc()).limit(limit)
        async with self._guard("reading interface history"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [rollup_of(r) for r in reversed(rows)]

    async def device_history(
        self,
        device_id: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[DeviceSample]:
        """One switch's samples in [since, until), oldest first; the newest ``limit`` of them.

        Raises:
            ValueError: limit is negative.
            StoreError: the database failed.
        """
        if limit < 0:
            raise ValueError("limit must not be negative")
        c = t.device_samples.c
        query = select(t.device_samples).where(c.device_id == device_id)
        query = _within(query, c.at, since, until)
        query = query.order_by(c.at.desc()).limit(limit)
        async with self._guard("reading device history"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DeviceSample(
                at=from_db(r.at),
                device_id=r.device_id,
                reachable=bool(r.reachable),
                uptime_seconds=r.uptime_seconds,
                poll_seconds=r.poll_seconds,
            )
            for r in reversed(rows)
        ]

    async def terminal_history(
        self,
        classroom: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
        *,
        school: str | None = None,
        terminal: str | None = None,
    ) -> list[TerminalSample]:
        """One classroom's heartbeats in [since, until), oldest first; the newest ``limit``.

        Name either the classroom, or the school and the terminal id (terminal ids are unique
        within a school only); the latter follows a terminal that moved between classrooms.

        Raises:
            ValueError: limit is negative, or not exactly one of classroom and
                (school, terminal) was given.
            StoreError: the database failed.
        """
        if limit < 0:
            raise ValueError("limit must not be negative")
        by_terminal = school is not None or terminal is not None
        if (classroom is not None) == by_terminal or (by_terminal and None in (school, terminal)):
            raise ValueError("give either a classroom, or both a school and a terminal")
        c = t.terminal_samples.c
        query = select(t.terminal_samples)
        if classroom is not None:
            query = query.where(c.classroom == classroom)
        else:
            query = query.where(c.school == school, c.terminal == terminal)
        query = _within(query, c.at, since, until)
        # Heartbeats replayed from a spool can share a receipt time; seq orders them.
        query = query.order_by(c.at.desc(), c.seq.desc()).limit(limit)
        async with self._guard("reading terminal history"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            TerminalSample(
                at=from_db(r.at),
                school=r.school,
                terminal=r.terminal,
                classroom=r.classroom,
                boot_id=r.boot_id,
                seq=r.seq,
                uptime_seconds=r.uptime_seconds,
                link_speed_mbps=r.link_speed_mbps,
                cpu_percent=r.cpu_percent,
                memory_used_bytes=r.memory_used_bytes,
                disk_used_bytes=r.disk_used_bytes,
            )
            for r in reversed(rows)
        ]
