"""Which shard a school is in, and what a collector should take and give back (pure).

The rules (docs/city-deployment.md, "Shards and leases"):

- A school's shard is a stable hash of its code, so every collector computes the same map.
- A collector holds at most its fair share, ``ceil(shards / live collectors)``, so the shards
  spread over the collectors that are alive; one that holds more gives the surplus back.
- A free shard (never held, released, or its lease expired) is taken by a collector under its
  fair share. A shard that stayed free for longer than a lease (every collector is at its share,
  say while the member count settles) is taken by anyone: no shard is left orphaned.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def shard_of(school: str, shards: int) -> int:
    """The shard of a school: CRC-32 of its code modulo the number of shards (stable)."""
    return zlib.crc32(school.encode()) % shards


def schools_by_shard(schools: Iterable[str], shards: int) -> dict[int, tuple[str, ...]]:
    """Every shard (0..shards-1, empty ones included) and its schools, sorted."""
    out: dict[int, list[str]] = {k: [] for k in range(shards)}
    for code in schools:
        out[shard_of(code, shards)].append(code)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def fair_share(shards: int, live: int) -> int:
    """How many shards one of ``live`` collectors should hold at most."""
    return math.ceil(shards / max(live, 1))


@dataclass(frozen=True, slots=True)
class Lease:
    """One shard's lease as the database has it."""

    shard: int
    owner: str | None
    expires_at: float
    """Unix seconds by the database's clock: when a held lease runs out; for a free shard, when
    it became free (released, run out, or created)."""
    epoch: int
    """Incremented at every change of owner: the fencing token a renewal must match."""

    def is_free(self, now: float) -> bool:
        return self.owner is None or self.expires_at <= now


@dataclass(frozen=True, slots=True)
class Plan:
    """What one round of the lease loop does."""

    take: tuple[int, ...]
    give_back: tuple[int, ...]


def plan(
    me: str,
    leases: Mapping[int, Lease],
    live: int,
    now: float,
    lease_seconds: float,
) -> Plan:
    """Decide which free shards to take and which held ones to give back.

    Args:
        me: this collector's id.
        leases: every shard's lease.
        live: collectors alive now (this one included).
        now: the database's time.
        lease_seconds: the lease length; a shard free this long is orphaned.
    """
    share = fair_share(len(leases), live)
    mine = sorted(k for k, lease in leases.items() if lease.owner == me and not lease.is_free(now))
    if len(mine) > share:
        # Give back the highest-numbered ones: every collector gives back the same way, so a
        # newcomer finds the surplus of each old one.
        return Plan(take=(), give_back=tuple(mine[share:]))
    free = [lease for k, lease in sorted(leases.items()) if lease.is_free(now)]
    room = share - len(mine)
    take = [lease.shard for lease in free[:room]]
    for lease in free[room:]:
        if now - lease.expires_at > lease_seconds:
            take.append(lease.shard)
    return Plan(take=tuple(take), give_back=())
