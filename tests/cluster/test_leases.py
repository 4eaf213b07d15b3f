"""Shard leases on a real database (SQLite and PostgreSQL): races, fencing, take-over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from edumon.cluster.leases import LeaseTable
from edumon.cluster.member import ClusterMember
from edumon.cluster.settings import ClusterConfig
from edumon.store.repository import Store, async_url

DEADLINE = 30.0


@pytest.fixture
async def engines(store: Store, database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two engines on the migrated database, as two collectors would have."""
    made = [
        create_async_engine(async_url(database_url), connect_args={"timeout": 10}) for _ in range(2)
    ]
    yield made
    for engine in made:
        await engine.dispose()


async def test_one_collector_wins_each_free_shard(engines: list[AsyncEngine]) -> None:
    a, b = LeaseTable(engines[0], "a"), LeaseTable(engines[1], "b")
    now = await a.now()
    await a.ensure_shards(8, now)
    await b.ensure_shards(8, now)  # idempotent
    results = await asyncio.gather(
        *(table.acquire(k, now, now + 30) for k in range(8) for table in (a, b))
    )
    wins = list(zip(results[0::2], results[1::2], strict=True))
    assert all((x is None) != (y is None) for x, y in wins), wins
    leases = await a.leases(8)
    assert sorted(leases) == list(range(8))
    assert all(lease.owner in ("a", "b") and lease.epoch == 1 for lease in leases.values())


async def test_a_lease_taken_over_is_not_renewed_by_its_old_holder(
    engines: list[AsyncEngine],
) -> None:
    a, b = LeaseTable(engines[0], "a"), LeaseTable(engines[1], "b")
    now = await a.now()
    await a.ensure_shards(2, now)
    epoch = await a.acquire(0, now, now + 5)
    assert epoch == 1
    assert await b.acquire(0, now + 1, now + 6) is None  # still a's
    assert await b.acquire(0, now + 5, now + 35) == 2  # ran out: b's, with a new epoch
    assert await a.renew({0: 1}, now + 40) == set()  # a's fencing token is stale
    assert await b.renew({0: 2}, now + 40) == {0}
    await a.release([(0, 1)], now + 6)  # a stale release changes nothing
    assert (await a.leases(2))[0].owner == "b"
    await b.release([(0, 2)], now + 7)
    lease = (await a.leases(2))[0]
    assert lease.owner is None
    assert lease.expires_at == pytest.approx(now + 7)


async def _wait(what: str, probe: object) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if probe():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _consume(member: ClusterMember, seen: list[frozenset[int]]) -> None:
    """What the app does: run each set until it changes (here: note it)."""
    async for held in member.held_shards():
        seen.append(held)
        await member.wait_changed(held)


async def test_two_members_split_the_shards_and_one_takes_over_when_the_other_dies(
    engines: list[AsyncEngine],
) -> None:
    config_a = ClusterConfig(collector_id="a", shards=4, lease_seconds=3, renew_seconds=0.3)
    config_b = ClusterConfig(collector_id="b", shards=4, lease_seconds=3, renew_seconds=0.3)
    a, b = ClusterMember(engines[0], config_a), ClusterMember(engines[1], config_b)
    seen_a: list[frozenset[int]] = []
    seen_b: list[frozenset[int]] = []
    tasks = [
        asyncio.create_task(a.run()),
        asyncio.create_task(_consume(a, seen_a)),
        asyncio.create_task(b.run()),
        asyncio.create_task(_consume(b, seen_b)),
    ]
    try:
        await _wait("two shards each", lambda: len(a.active) == 2 and len(b.active) == 2)
        assert a.active.isdisjoint(b.active)
        # a dies: its lease loop stops without releasing anything.
        for task in tasks[:2]:
            task.cancel()
        died = time.monotonic()
        await _wait("b holds every shard", lambda: b.active == frozenset(range(4)))
        took = time.monotonic() - died
        # Within the lease, the member's heartbeat running out, and a few rounds.
        assert took < 3 + 3 * 0.3 + 5, took
        assert seen_b[-1] == frozenset(range(4))
        assert b.stats.taken_total >= 4
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await b.leave()


async def test_a_newcomer_gets_its_share_given_back(engines: list[AsyncEngine]) -> None:
    config_a = ClusterConfig(collector_id="a", shards=4, lease_seconds=3, renew_seconds=0.3)
    config_b = ClusterConfig(collector_id="b", shards=4, lease_seconds=3, renew_seconds=0.3)
    a, b = ClusterMember(engines[0], config_a), ClusterMember(engines[1], config_b)
    seen_a: list[frozenset[int]] = []
    seen_b: list[frozenset[int]] = []
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(_consume(a, seen_a))]
    try:
        await _wait("a holds every shard", lambda: a.active == frozenset(range(4)))
        tasks += [asyncio.create_task(b.run()), asyncio.create_task(_consume(b, seen_b))]
        await _wait("two shards each", lambda: len(a.active) == 2 and len(b.active) == 2)
        assert a.active == {0, 1}
        assert b.active == {2, 3}
        assert a.stats.given_back_total == 2
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await a.leave()
        await b.leave()


async def test_a_restarted_collector_takes_its_shards_back_at_once(
    engines: list[AsyncEngine],
) -> None:
    config = ClusterConfig(collector_id="a", shards=4, lease_seconds=60, renew_seconds=0.3)
    first = ClusterMember(engines[0], config)
    seen: list[frozenset[int]] = []
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(_consume(first, seen))]
    try:
        await _wait("a holds every shard", lambda: first.active == frozenset(range(4)))
    finally:
        for task in tasks:  # a crash: nothing released
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    again = ClusterMember(engines[1], config)
    tasks = [asyncio.create_task(again.run()), asyncio.create_task(_consume(again, seen))]
    try:
        started = time.monotonic()
        await _wait(
            "the restarted a holds every shard", lambda: again.active == frozenset(range(4))
        )
        assert time.monotonic() - started < 30  # long before the 60 s leases run out
        leases = await LeaseTable(engines[1], "a").leases(4)
        assert {lease.epoch for lease in leases.values()} == {2}
        assert await LeaseTable(engines[0], "a").renew({0: 1}, time.time() + 60) == set()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await again.leave()
