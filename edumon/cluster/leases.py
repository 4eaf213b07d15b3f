"""The lease and member rows in the database (SQLite or PostgreSQL), one short transaction each.

Every change of a lease is one conditional UPDATE, so the database decides who wins a race:
PostgreSQL locks the row and re-checks the condition after a concurrent writer commits (READ
COMMITTED), SQLite serialises writers. Time is the database's clock on PostgreSQL, so the
collectors' own clocks may disagree; SQLite serves one host, whose clock is the only one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from edumon.cluster.shards import Lease
from edumon.store import tables as t


class LeaseTable:
    """Reads and changes ``cluster_leases`` and ``cluster_members`` for one collector."""

    def __init__(self, engine: AsyncEngine, me: str) -> None:
        self._engine = engine
        self._me = me
        self._postgres = engine.dialect.name == "postgresql"

    async def now(self) -> float:
        """The database's time in Unix seconds (this host's clock on SQLite)."""
        if not self._postgres:
            return time.time()
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
            ).scalar_one()
        return float(value)

    async def ensure_shards(self, shards: int, now: float) -> None:
        """Create the rows of shards 0..shards-1 that do not exist yet (free since now)."""
        rows = [{"shard": k, "owner": None, "expires_at": now, "epoch": 0} for k in range(shards)]
        stmt = (pg_insert if self._postgres else sqlite_insert)(t.cluster_leases)
        async with self._engine.begin() as conn:
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["shard"]), rows)

    async def heartbeat(self, *, started_at: float, alive_until: float, held: int) -> None:
        """Say this collector is alive until ``alive_until``."""
        stmt = (pg_insert if self._postgres else sqlite_insert)(t.cluster_members).values(
            collector_id=self._me, started_at=started_at, alive_until=alive_until, shards_held=held
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["collector_id"],
            set_={"started_at": started_at, "alive_until": alive_until, "shards_held": held},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def leave(self) -> None:
        """Remove this collector's member row (a clean stop: the others rebalance at once)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                t.cluster_members.delete().where(t.cluster_members.c.collector_id == self._me)
            )

    async def live_members(self, now: float) -> list[str]:
        """The collectors whose heartbeat has not run out."""
        m = t.cluster_members
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(m.c.collector_id).where(m.c.alive_until > now).order_by(m.c.collector_id)
            )
            return [r[0] for r in rows]

    async def leases(self, shards: int) -> dict[int, Lease]:
        """Every shard's lease (0..shards-1)."""
        c = t.cluster_leases.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(c.shard, c.owner, c.expires_at, c.epoch).where(c.shard < shards)
            )
            return {
                r.shard: Lease(r.shard, r.owner, float(r.expires_at), int(r.epoch)) for r in rows
            }

    async def acquire(self, shard: int, now: float, until: float) -> int | None:
        """Take a free shard; its new epoch, or None when another collector holds it."""
        c = t.cluster_leases.c
        stmt = (
            update(t.cluster_leases)
            .where(c.shard == shard, (c.owner.is_(None)) | (c.expires_at <= now))
            .values(owner=self._me, expires_at=until, epoch=c.epoch + 1)
            .returning(c.epoch)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else int(row[0])

    async def adopt(self, shard: int, until: float) -> int | None:
        """Take back a lease this collector's id still holds from before a restart.

        Its new epoch, or None when the lease is no longer this id's. Collector ids are unique
        (docs/city-deployment.md): a lease in this id's name is a previous run's.
        """
        c = t.cluster_leases.c
        stmt = (
            update(t.cluster_leases)
            .where(c.shard == shard, c.owner == self._me)
            .values(expires_at=until, epoch=c.epoch + 1)
            .returning(c.epoch)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else int(row[0])

    async def renew(self, held: dict[int, int], until: float) -> set[int]:
        """Extend the leases this collector holds (shard -> epoch); the shards still held.

        A shard whose epoch changed was taken over (this collector's lease had run out): it is
        not renewed, and not in the answer.
        """
        c = t.cluster_leases.c
        kept: set[int] = set()
        async with self._engine.begin() as conn:
            for shard, epoch in held.items():
                result = await conn.execute(
                    update(t.cluster_leases)
                    .where(c.shard == shard, c.owner == self._me, c.epoch == epoch)
                    .values(expires_at=until)
                )
                if result.rowcount == 1:
                    kept.add(shard)
        return kept

    async def release(self, shards: Iterable[tuple[int, int]], now: float) -> None:
        """Give shards back (shard, epoch) so that another collector takes them at once."""
        c = t.cluster_leases.c
        async with self._engine.begin() as conn:
            for shard, epoch in shards:
                await conn.execute(
                    update(t.cluster_leases)
                    .where(c.shard == shard, c.owner == self._me, c.epoch == epoch)
                    .values(owner=None, expires_at=now)
                )
