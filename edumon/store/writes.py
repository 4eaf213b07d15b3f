"""The store's writes: the inventory from the configuration, sample batches, daily
availability, and pruning."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Delete, Insert, Table, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from edumon.config import Config
from edumon.domain.models import DeviceSample, Event, TerminalSample
from edumon.domain.rollups import InterfaceRollup
from edumon.store import tables as t
from edumon.store.base import WRITE_CHUNK_ROWS, StoreBase, chunks, logger
from edumon.store.protocol import AgentReportRow, ClassroomAvailability, SenderPosition
from edumon.store.timestamps import sqlite_text, to_db

# Bound parameters per statement stay under both backends' limits (SQLite 32,766; asyncpg 32,767).
IN_CLAUSE_CHUNK = 10_000

_SQLITE_TERMINAL_INSERT = (
    "INSERT OR IGNORE INTO terminal_samples (school, terminal, boot_id, seq, at, classroom, "
    "uptime_seconds, link_speed_mbps, cpu_percent, memory_used_bytes, disk_used_bytes) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Each sender's newest stored message, replaced in place (plain tuples on SQLite, as above).
_SQLITE_POSITION_UPSERT = (
    "INSERT INTO sender_positions (school, role, sender, boot_id, birth_seq, seq, observed_at, "
    "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (school, role, sender) DO UPDATE SET "
    "boot_id = excluded.boot_id, birth_seq = excluded.birth_seq, seq = excluded.seq, "
    "observed_at = excluded.observed_at, at = excluded.at"
)


def _larger(old: ColumnElement[Any], new: ColumnElement[Any]) -> ColumnElement[Any]:
    """The larger of two nullable values, a NULL one ignored (portable GREATEST)."""
    return case((old.is_(None), new), (new.is_(None), old), (new > old, new), else_=old)


def _merged_mean(
    old: ColumnElement[Any],
    old_polls: ColumnElement[Any],
    new: ColumnElement[Any],
    new_polls: ColumnElement[Any],
) -> ColumnElement[Any]:
    """Two means of one bucket merged, weighted by polls (a NULL one ignored)."""
    return case(
        (old.is_(None), new),
        (new.is_(None), old),
        else_=(old * old_polls + new * new_polls) / (old_polls + new_polls),
    )


class StoreWrites(StoreBase):
    """Writes of ``Store``."""

    async def sync_inventory(self, config: Config, *, remove_missing: bool = True) -> None:
        """Make the inventory tables match the configuration (idempotent).

        Args:
            config: the validated configuration; SNMP credentials are never stored.
            remove_missing: delete schools, classrooms and switches of this district that the
                configuration no longer lists. Collectors that each hold a shard of one
                district's inventory pass False.

        Raises:
            StoreError: the database failed; nothing was changed.
        """
        district = config.district.code
        school_rows = [
            {
                "code": s.code,
                "district": district,
                "name": s.name,
                "kind": s.kind,
                "uplink_switch": s.uplink.switch,
                "uplink_port": s.uplink.port,
            }
            for s in config.schools.values()
        ]
        room_rows = [
            {
                "id": r.id,
                "school": s.code,
                "name": r.name,
                "switch": r.switch,
                "port": r.port,
                "terminal": r.terminal_id,
            }
            for s in config.schools.values()
            for r in s.classrooms
        ]
        device_rows = [
            {
                "id": sw.id,
                "district": district,
                "school": sw.school,
                "host": sw.host,
                "port": sw.port,
            }
            for sw in config.switches.values()
        ]
        async with self._guard("syncing the inventory"), self._engine.begin() as conn:
            await conn.execute(
                self._upsert(t.districts), [{"code": district, "name": config.district.name}]
            )
            for table, rows in (
                (t.schools, school_rows),
                (t.devices, device_rows),
                (t.classrooms, room_rows),
            ):
                for chunk in chunks(rows, WRITE_CHUNK_ROWS):
                    await conn.execute(self._upsert(table), list(chunk))
            if remove_missing:
                school_codes = list(config.schools)
                await self._delete_missing(
                    conn,
                    t.classrooms,
                    t.classrooms.c.id,
                    {r.id for s in config.schools.values() for r in s.classrooms},
                    t.classrooms.c.school,
                    school_codes,
                )
                await self._delete_missing(
                    conn,
                    t.devices,
                    t.devices.c.id,
                    set(config.switches),
                    t.devices.c.district,
                    [district],
                )
                await self._delete_missing(
                    conn,
                    t.schools,
                    t.schools.c.code,
                    set(school_codes),
                    t.schools.c.district,
                    [district],
                )
        logger.info(
            "database %s: inventory synced (%d schools, %d classrooms, %d switches)",
            self._name,
            len(school_rows),
            len(room_rows),
            len(device_rows),
        )

    async def _delete_missing(
        self,
        conn: AsyncConnection,
        table: Table,
        key: Any,
        keep: set[str],
        scope: Any,
        scope_values: Sequence[str],
    ) -> None:
        # Read the stored keys and delete by difference in chunks: a NOT IN list of every
        # classroom of a city would exceed the backends' bound-parameter limits.
        stored: set[str] = set()
        for chunk in chunks(scope_values, IN_CLAUSE_CHUNK):
            result = await conn.execute(select(key).where(scope.in_(chunk)))
            stored.update(result.scalars())
        gone = sorted(stored - keep)
        for chunk in chunks(gone, IN_CLAUSE_CHUNK):
            stmt: Delete = delete(table).where(key.in_(chunk))
            await conn.execute(stmt)
        if gone:
            logger.info("database %s: removed %d rows from %s", self._name, len(gone), table.name)

    def _rollup_upsert(self) -> Insert:
        """INSERT of interface roll-ups that merges a bucket already stored.

        A bucket is written twice when the collector restarted in its middle, or a poll came
        after the bucket was handed out: polls add up, means are weighted by polls, peaks are
        the larger, status and speed are those of the later last poll.
        """
        stmt = self._insert(t.interface_rollups)
        old, new = t.interface_rollups.c, stmt.excluded
        later = new.last_at > old.last_at
        merged: Insert = stmt.on_conflict_do_update(
            index_elements=["device_id", "interface", "bucket_start"],
            set_={
                "polls": old.polls + new.polls,
                "up_polls": old.up_polls + new.up_polls,
                "in_bps": _merged_mean(old.in_bps, old.polls, new.in_bps, new.polls),
                "out_bps": _merged_mean(old.out_bps, old.polls, new.out_bps, new.polls),
                "in_bps_max": _larger(old.in_bps_max, new.in_bps_max),
                "out_bps_max": _larger(old.out_bps_max, new.out_bps_max),
                "max_utilisation": _larger(old.max_utilisation, new.max_utilisation),
                "speed_mbps": case((later, new.speed_mbps), else_=old.speed_mbps),
                "oper_status": case((later, new.oper_status), else_=old.oper_status),
                "last_at": case((later, new.last_at), else_=old.last_at),
            },
        )
        return merged

    async def write(
        self,
        interface_rollups: Sequence[InterfaceRollup] = (),
        device_samples: Sequence[DeviceSample] = (),
        events: Sequence[Event] = (),
        terminal_samples: Sequence[TerminalSample] = (),
        *,
        positions: Sequence[SenderPosition] = (),
        agent_reports: Sequence[AgentReportRow] = (),
    ) -> None:
        """Store a batch in one transaction: all of it or none of it.

        ``positions`` (each MQTT sender's newest message the batch covers) replace the stored
        ones in the same transaction, so a message is never recorded as stored without its
        rows, nor its rows without it. ``agent_reports`` (the school agents' reports whose rows
        the batch completes) are recorded the same way, each (agent, boot, seq) once.

        Samples already stored (same device and time; terminal heartbeats with the same school,
        terminal, boot id and sequence number) are skipped, so a batch retried after an
        ambiguous failure, or heartbeats replayed from an agent's spool, are not duplicated.
        An interface roll-up of a bucket already stored is merged into it (see
        ``_rollup_upsert``).

        Raises:
            StoreError: the database failed; nothing was stored and the caller may retry the
                same batch later.
        """
        iface_rows = [
            {
                "device_id": r.device_id,
                "interface": r.interface,
                "bucket_start": to_db(r.bucket_start),
                "bucket_seconds": r.bucket_seconds,
                "polls": r.polls,
                "up_polls": r.up_polls,
                "in_bps": r.in_bps,
                "out_bps": r.out_bps,
                "in_bps_max": r.in_bps_max,
                "out_bps_max": r.out_bps_max,
                "max_utilisation": r.max_utilisation,
                "speed_mbps": r.speed_mbps,
                "oper_status": int(r.oper_status),
                "last_at": to_db(r.last_at),
            }
            for r in interface_rollups
        ]
        device_rows = [
            {
                "device_id": s.device_id,
                "at": to_db(s.at),
                "reachable": s.reachable,
                "uptime_seconds": s.uptime_seconds,
                "poll_seconds": s.poll_seconds,
            }
            for s in device_samples
        ]
        event_rows = [
            {
                "at": to_db(e.at),
                "kind": str(e.kind),
                "device_id": e.device_id,
                "school": e.school,
                "interface": e.interface,
                "classroom": e.classroom,
                "message": e.message,
                "details": dict(e.details),
            }
            for e in events
        ]
        terminal_rows: list[dict[str, Any]] = []
        terminal_tuples: list[tuple[Any, ...]] = []
        if self._dialect == "sqlite":
            # Heartbeats are the bulk of a county's writes (thousands a second at peak):
            # SQLite gets plain tuples through the driver, skipping SQLAlchemy's per-row
            # parameter processing (half the cost). The text timestamp is the format
            # UtcDateTime stores there (naive UTC, microseconds always written).
            terminal_tuples = [
                (
                    s.school,
                    s.terminal,
                    s.boot_id,
                    s.seq,
                    sqlite_text(s.at),
                    s.classroom,
                    s.uptime_seconds,
                    s.link_speed_mbps,
                    s.cpu_percent,
                    s.memory_used_bytes,
                    s.disk_used_bytes,
                )
                for s in terminal_samples
            ]
        else:
            terminal_rows = [
                {
                    "school": s.school,
                    "terminal": s.terminal,
                    "boot_id": s.boot_id,
                    "seq": s.seq,
                    "at": to_db(s.at),
                    "classroom": s.classroom,
                    "uptime_seconds": s.uptime_seconds,
                    "link_speed_mbps": s.link_speed_mbps,
                    "cpu_percent": s.cpu_percent,
                    "memory_used_bytes": s.memory_used_bytes,
                    "disk_used_bytes": s.disk_used_bytes,
                }
                for s in terminal_samples
            ]
        new_interfaces: dict[tuple[str, str], float] = {}
        for r in interface_rollups:
            pair = (r.device_id, r.interface)
            if pair not in self._seen_interfaces:
                new_interfaces[pair] = min(r.bucket_start, new_interfaces.get(pair, r.bucket_start))
        interface_rows = [
            {"device_id": d, "name": n, "first_seen": to_db(at)}
            for (d, n), at in new_interfaces.items()
        ]
        position_rows: list[dict[str, Any]] = []
        position_tuples: list[tuple[Any, ...]] = []
        if self._dialect == "sqlite":
            position_tuples = [
                (
                    p.school,
                    p.role,
                    p.sender,
                    p.boot_id,
                    p.birth_seq,
                    p.seq,
                    p.observed_at,
                    sqlite_text(p.at),
                )
                for p in positions
            ]
        else:
            position_rows = [
                {
                    "school": p.school,
                    "role": p.role,
                    "sender": p.sender,
                    "boot_id": p.boot_id,
                    "birth_seq": p.birth_seq,
                    "seq": p.seq,
                    "observed_at": p.observed_at,
                    "at": to_db(p.at),
                }
                for p in positions
            ]
        report_rows = [
            {
                "agent": r.agent,
                "boot_id": r.boot_id,
                "seq": r.seq,
                "school": r.school,
                "subject": r.subject,
                "observed_at": to_db(r.observed_at),
                "received_at": to_db(r.received_at),
                "historical": r.historical,
            }
            for r in agent_reports
        ]
        total = (
            len(position_rows)
            + len(report_rows)
            + len(position_tuples)
            + len(iface_rows)
            + len(device_rows)
            + len(event_rows)
            + len(terminal_rows)
            + len(terminal_tuples)
        )
        if total == 0:
            return
        async with self._writing(f"writing {total} rows"), self._engine.begin() as conn:
            for stmt, rows in (
                (self._rollup_upsert(), iface_rows),
                (self._insert_ignore(t.device_samples), device_rows),
                (self._insert_ignore(t.interfaces), interface_rows),
                (self._insert_ignore(t.terminal_samples), terminal_rows),
                (t.events.insert(), event_rows),
                (self._upsert(t.sender_positions), position_rows),
                (self._insert_ignore(t.agent_reports), report_rows),
            ):
                for chunk in chunks(rows, WRITE_CHUNK_ROWS):
                    await conn.execute(stmt, list(chunk))
            for tuples in chunks(terminal_tuples, WRITE_CHUNK_ROWS):
                await conn.exec_driver_sql(_SQLITE_TERMINAL_INSERT, list(tuples))
            for tuples in chunks(position_tuples, WRITE_CHUNK_ROWS):
                await conn.exec_driver_sql(_SQLITE_POSITION_UPSERT, list(tuples))
        # Only after the commit: a failed batch must insert its interfaces when retried.
        self._seen_interfaces.update(new_interfaces)

    async def upsert_availability(self, rows: Sequence[ClassroomAvailability]) -> None:
        """Insert daily availability rows, replacing those of the same day and classroom.

        Raises:
            StoreError: the database failed; nothing was changed.
        """
        values = [
            {
                "day": r.day,
                "classroom": r.classroom,
                "school": r.school,
                "terminal": r.terminal,
                "lesson_seconds": r.lesson_seconds,
                "monitored_seconds": r.monitored_seconds,
                "online_seconds": r.online_seconds,
                "lessons": r.lessons,
                "lessons_monitored": r.lessons_monitored,
                "lessons_used": r.lessons_used,
                "terminal_days": r.terminal_days,
                "terminal_days_monitored": r.terminal_days_monitored,
                "terminals_on": r.terminals_on,
                "switched_on": r.switched_on,
                "computed_at": to_db(r.computed_at),
            }
            for r in rows
        ]
        if not values:
            return
        stmt = self._upsert(t.classroom_availability_daily)
        async with (
            self._writing(f"writing {len(values)} availability rows"),
            self._engine.begin() as conn,
        ):
            for chunk in chunks(values, WRITE_CHUNK_ROWS):
                await conn.execute(stmt, list(chunk))

    async def start_run(self, at: float) -> int:
        """Record that monitoring starts at ``at``; the run's id, for ``keep_run``.

        Raises:
            StoreError: the database failed.
        """
        stmt = t.monitor_runs.insert().values(started_at=to_db(at), alive_until=to_db(at))
        async with self._writing("recording the monitoring run"), self._engine.begin() as conn:
            result = await conn.execute(stmt.returning(t.monitor_runs.c.id))
            return int(result.scalar_one())

    async def keep_run(self, run: int, at: float) -> None:
        """Record that the run ``run`` was still monitoring at ``at``.

        Raises:
            StoreError: the database failed.
        """
        c = t.monitor_runs.c
        stmt = update(t.monitor_runs).where(c.id == run).values(alive_until=to_db(at))
        async with self._writing("recording the monitoring run"), self._engine.begin() as conn:
            await conn.execute(stmt)

    async def prune(self, now: float, retention_seconds: float) -> int:
        """Delete interface roll-ups, device and terminal samples older than the retention.

        A roll-up goes with its bucket's start, samples with their time, before
        ``now - retention_seconds``.

        Events, daily availability and inventory are never pruned.

        Returns:
            The number of samples deleted.

        Raises:
            ValueError: retention_seconds is not positive.
            StoreError: the database failed; nothing was deleted.
        """
        if retention_seconds <= 0:
            raise ValueError("retention_seconds must be positive")
        cutoff = to_db(now - retention_seconds)
        deleted = 0
        async with self._writing("pruning old samples"), self._engine.begin() as conn:
            for table, at in (
                (t.interface_rollups, t.interface_rollups.c.bucket_start),
                (t.device_samples, t.device_samples.c.at),
                (t.terminal_samples, t.terminal_samples.c.at),
                (t.agent_reports, t.agent_reports.c.observed_at),
            ):
                result = await conn.execute(delete(table).where(at < cutoff))
                deleted += max(result.rowcount, 0)
        if deleted:
            logger.info("database %s: pruned %d samples before %s", self._name, deleted, cutoff)
        return deleted
