"""A collector of a cluster: the lease loop, and the app's pipeline restarted per set of shards.

While this collector's set of shards stays the same, one pipeline (edumon.app) runs the
configuration restricted to those shards' schools: its state, API and /metrics cover exactly
the schools it processes. When the set changes (a shard taken over, or given back to a
newcomer), that pipeline drains and stops, and the next one starts on the new set: like a
restart of the daemon for those schools (retained statuses and the next poll rebuild their
state). See docs/city-deployment.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

from sqlalchemy.ext.asyncio import create_async_engine

from edumon.cluster.member import ClusterMember
from edumon.cluster.shards import schools_by_shard
from edumon.config import Config
from edumon.errors import StoreError
from edumon.store.repository import async_url, open_store

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
"""How long a pipeline that could not open the database waits before it tries again."""

Shards = Mapping[int, tuple[str, ...]]
"""Held shards and their schools."""

RunShards = Callable[[Config, Shards, asyncio.Event, ClusterMember], Awaitable[None]]
"""Runs the pipeline of a restricted configuration until the event is set."""


def switch_owners(config: Config) -> dict[str, str | None]:
    """Every switch's school (see :func:`school_of_switch`)."""
    uplinks = {(s.uplink.switch, s.uplink.port): code for code, s in config.schools.items()}
    return {sid: school_of_switch(config, sid, uplinks) for sid in config.switches}


def school_of_switch(
    config: Config, switch_id: str, uplinks: Mapping[tuple[str, str], str] | None = None
) -> str | None:
    """The school whose collector polls a switch; None: a district switch, polled by all.

    A switch the configuration gives a school is that school's. So is one cabled (``upstream``)
    to a school's uplink port, the school's core under a district switch, and one cabled to a
    switch of a school (docs/topology.md).
    """
    if uplinks is None:
        uplinks = {(s.uplink.switch, s.uplink.port): code for code, s in config.schools.items()}
    seen: set[str] = set()
    current: str | None = switch_id
    while current is not None and current not in seen:
        seen.add(current)
        sw = config.switches.get(current)
        if sw is None:
            return None
        if sw.school is not None:
            return sw.school
        if sw.upstream is None:
            return None
        at_uplink = uplinks.get((sw.upstream.switch, sw.upstream.port))
        if at_uplink is not None:
            return at_uplink
        current = sw.upstream.switch
    return None


def restrict(config: Config, schools: Collection[str]) -> Config:
    """The configuration of these schools: their switches, and the district's own switches.

    District switches (a town's aggregation switch, the core) stay in every collector's
    inventory and polling: the schools behind them are judged by their state
    (docs/topology.md).
    """
    keep = set(schools)
    owners = switch_owners(config)
    return dataclasses.replace(
        config,
        schools={code: s for code, s in config.schools.items() if code in keep},
        switches={
            sid: sw
            for sid, sw in config.switches.items()
            if owners[sid] is None or owners[sid] in keep
        },
    )


async def _first(stop: asyncio.Event, waiting: Awaitable[object]) -> bool:
    """Await ``waiting`` unless ``stop`` is set first; True when it completed."""
    task = asyncio.ensure_future(waiting)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task.done() and not task.cancelled()


async def _end_generation(
    stop: asyncio.Event, member: ClusterMember, held: frozenset[int], generation: asyncio.Event
) -> None:
    await _first(stop, member.wait_changed(held))
    generation.set()


async def run_sharded(config: Config, *, stop: asyncio.Event, run_shards: RunShards) -> None:
    """Join the cluster and run the schools of the shards held until ``stop`` is set.

    Args:
        config: the whole district's configuration, with ``[cluster]``.
        stop: set to leave the cluster (its leases are released for the others at once).
        run_shards: runs one pipeline (``edumon.app``) for a restricted configuration.
    """
    cluster = config.cluster
    assert cluster is not None
    # The schema and the whole inventory first (every collector has the same configuration).
    store = await open_store(config.storage.url)
    try:
        await store.sync_inventory(config)
    finally:
        await store.aclose()
    # The lease loop's own engine: the pipelines' stores come and go with the shards held.
    url = async_url(config.storage.url.get_secret_value())
    # "timeout": asyncpg's connect timeout, SQLite's busy timeout (seconds) alike.
    engine = create_async_engine(url, pool_pre_ping=True, connect_args={"timeout": 10})
    member = ClusterMember(engine, cluster)
    by_shard = schools_by_shard(config.schools, cluster.shards)
    held_sets = member.held_shards()
    leases = asyncio.create_task(member.run(), name="cluster-leases")
    try:
        while not stop.is_set():
            next_set = asyncio.ensure_future(anext(held_sets))
            if not await _first(stop, next_set):
                break
            held = next_set.result()
            shards = {k: by_shard[k] for k in sorted(held)}
            schools = [code for k in sorted(held) for code in by_shard[k]]
            log.info(
                "cluster: collector %s runs shards %s (%d schools)",
                cluster.collector_id,
                sorted(held),
                len(schools),
            )
            generation = asyncio.Event()
            watcher = asyncio.create_task(
                _end_generation(stop, member, held, generation), name="cluster-watch"
            )
            try:
                while not generation.is_set():
                    try:
                        await run_shards(restrict(config, schools), shards, generation, member)
                    except StoreError as exc:
                        # The database is down (a restart, say): try again while the set of
                        # shards stays this one; its leases run out otherwise, and then the
                        # next set (none, until the database is back) is tried.
                        log.error(
                            "cluster: the pipeline of shards %s cannot start: %s; retrying in %g s",
                            sorted(held),
                            exc,
                            RETRY_SECONDS,
                        )
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(RETRY_SECONDS):
                                await generation.wait()
            finally:
                watcher.cancel()
            if leases.done():
                leases.result()  # a bug in the lease loop ends the daemon
    finally:
        leases.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leases
        await held_sets.aclose()
        await member.leave()
        await engine.dispose()
