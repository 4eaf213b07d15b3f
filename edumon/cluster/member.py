"""The lease loop of one collector, and the shards it tells the app to run.

Every ``renew_every`` seconds a round: renew the leases held (a lease whose epoch changed was
taken over and is dropped), say this collector is alive, count the live collectors, then take
free shards up to the fair share or mark the surplus to give back (``edumon.cluster.shards``).
The app runs the shards of ``held_shards()``; a shard given back is released in the database
only after the app stopped running it, so its MQTT session and its last writes are done before
another collector starts on it. When the database cannot be reached long enough for the leases
to run out, this collector stops running its shards before any other may take them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from edumon.cluster.leases import LeaseTable
from edumon.cluster.settings import ClusterConfig
from edumon.cluster.shards import plan

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ClusterStats:
    """The lease loop's figures (logs and tests read them)."""

    rounds_total: int = 0
    round_failures_total: int = 0
    taken_total: int = 0
    given_back_total: int = 0
    lost_total: int = 0
    live_collectors: int = 0


class ClusterMember:
    """One collector's membership: its heartbeat, its leases, the shards it runs."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: ClusterConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.me = config.collector_id
        self.stats = ClusterStats()
        self._table = LeaseTable(engine, self.me)
        self._monotonic = monotonic
        self._held: dict[int, int] = {}
        """Shards whose lease this collector holds in the database, and their epochs."""
        self._giving_back: set[int] = set()
        self._active: frozenset[int] = frozenset()
        self._running: frozenset[int] = frozenset()
        """The shards the app runs now (between a yield of held_shards and the next)."""
        self._valid_until = 0.0
        """Monotonic time until which the leases held are surely still this collector's."""
        self._changed = asyncio.Condition()
        self._ready = asyncio.Event()
        self._started_at = 0.0

    @property
    def shards_total(self) -> int:
        """How many shards the district has."""
        return self.config.shards

    @property
    def active(self) -> frozenset[int]:
        """The shards the app should be running now."""
        return self._active

    async def run(self) -> None:
        """The lease loop, until cancelled. Database failures are logged and retried."""
        every = self.config.renew_every
        first = True
        while True:
            started = self._monotonic()
            try:
                # A round may take longer than the interval on a loaded machine; one that
                # takes half a lease is stuck.
                async with asyncio.timeout(self.config.lease_seconds / 2):
                    await self._round(first)
                first = False
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                self.stats.round_failures_total += 1
                log.warning(
                    "集群租约续约失败 / cluster lease round failed: %s (retrying in %.0f s; "
                    "shards held: %d)",
                    type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
                    every,
                    len(self._held),
                )
            if self._held and self._monotonic() >= self._valid_until:
                log.error(
                    "集群租约已过期，停止处理分片 / cluster leases ran out (database unreachable): "
                    "this collector stops its shards %s before another takes them over",
                    sorted(self._held),
                )
                self.stats.lost_total += len(self._held)
                self._held.clear()
                self._giving_back.clear()
                await self._publish()
            # The first round only says this collector joined: one interval passes before
            # it takes anything.
            await asyncio.sleep(max(0.0, every - (self._monotonic() - started)))

    async def _round(self, first: bool) -> None:
        lease = self.config.lease_seconds
        table = self._table
        # Before the database's time is read: the leases renewed below run out no sooner than
        # lease_seconds after this.
        renewed_at = self._monotonic()
        now = await table.now()
        if first:
            self._started_at = now
            await table.ensure_shards(self.config.shards, now)
            # Say we are alive before taking anything, and let one round pass: collectors
            # started together then see each other and split the shards at once.
            await table.heartbeat(started_at=now, alive_until=now + lease, held=0)
            log.info(
                "cluster: collector %s joined (%d shards, lease %g s)",
                self.me,
                self.config.shards,
                lease,
            )
            return
        if self._held:
            kept = await table.renew(self._held, now + lease)
            for shard in sorted(set(self._held) - kept):
                log.warning("cluster: shard %d was taken over by another collector", shard)
                self.stats.lost_total += 1
                del self._held[shard]
                self._giving_back.discard(shard)
        self._valid_until = renewed_at + lease - self.config.renew_every / 2
        await table.heartbeat(
            started_at=self._started_at, alive_until=now + lease, held=len(self._held)
        )
        live = await table.live_members(now)
        self.stats.live_collectors = len(live)
        leases = await table.leases(self.config.shards)
        for shard, held in sorted(leases.items()):
            if held.owner == self.me and not held.is_free(now) and shard not in self._held:
                # Held in this id's name by its run before a restart (a crash, say): this run
                # takes it back at once rather than waiting for the lease to run out.
                epoch = await table.adopt(shard, now + lease)
                if epoch is not None:
                    self._held[shard] = epoch
                    self.stats.taken_total += 1
                    log.info("cluster: took back shard %d held before a restart", shard)
        decided = plan(self.me, leases, max(len(live), 1), now, lease)
        if decided.give_back and not set(decided.give_back) <= self._giving_back:
            log.info(
                "cluster: %d collectors alive; giving back shards %s",
                len(live),
                list(decided.give_back),
            )
        self._giving_back |= set(decided.give_back) & set(self._held)
        for shard in decided.take:
            previous = leases[shard].owner
            epoch = await table.acquire(shard, now, now + lease)
            if epoch is None:
                continue
            self._held[shard] = epoch
            self.stats.taken_total += 1
            log.info(
                "cluster: took shard %d%s",
                shard,
                f" (its lease from {previous} ran out)" if previous not in (None, self.me) else "",
            )
        self.stats.rounds_total += 1
        await self._publish()
        await self._release_given_back()
        self._ready.set()

    async def _publish(self) -> None:
        active = frozenset(self._held) - self._giving_back
        if active != self._active:
            async with self._changed:
                self._active = active
                self._changed.notify_all()

    async def wait_changed(self, current: frozenset[int]) -> None:
        """Return once the shards to run differ from ``current``."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._active != current)

    async def held_shards(self) -> AsyncGenerator[frozenset[int]]:
        """The shards to run, each time they change (the first set after the first round).

        The consumer runs one set until :meth:`wait_changed` returns, then asks for the next:
        the shards it stopped running are released then.
        """
        await self._ready.wait()
        while True:
            current = self._running = self._active
            yield current
            self._running = frozenset()
            await self._release_given_back()
            await self.wait_changed(current)

    async def _release_given_back(self) -> None:
        idle = sorted(self._giving_back - self._running)
        given = {k: self._held.pop(k) for k in idle if k in self._held}
        self._giving_back -= set(idle)
        if not given:
            return
        self.stats.given_back_total += len(given)
        try:
            await self._table.release(given.items(), await self._table.now())
        except (SQLAlchemyError, OSError) as exc:
            # The leases run out by themselves within lease_seconds.
            log.warning("cluster: could not release shards %s: %s", sorted(given), exc)

    async def leave(self) -> None:
        """Release every lease and the member row (a clean stop)."""
        held, self._held = dict(self._held), {}
        self._giving_back.clear()
        try:
            async with asyncio.timeout(5):
                if held:
                    await self._table.release(held.items(), await self._table.now())
                await self._table.leave()
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("cluster: could not release shards on stop: %s", exc)
