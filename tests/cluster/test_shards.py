"""The pure rules of scale-out: which shard a school is in, what to take, what to give back."""

from __future__ import annotations

import pytest

from edumon.cluster.ingests import AckRouter
from edumon.cluster.shards import Lease, Plan, fair_share, plan, schools_by_shard, shard_of

NOW = 1_000_000.0
LEASE = 30.0


def test_shard_of_is_stable_and_in_range() -> None:
    # The same on every collector and in every run (not Python's salted hash()).
    assert shard_of("CG01", 16) == shard_of("CG01", 16) == 3
    assert {shard_of(f"S{i:04d}", 16) for i in range(2000)} == set(range(16))


def test_schools_by_shard_lists_every_shard_and_every_school_once() -> None:
    codes = [f"S{i:03d}" for i in range(100)]
    by_shard = schools_by_shard(codes, 8)
    assert sorted(by_shard) == list(range(8))
    assert sorted(code for schools in by_shard.values() for code in schools) == codes


@pytest.mark.parametrize(
    ("shards", "live", "share"), [(16, 1, 16), (16, 2, 8), (16, 3, 6), (16, 0, 16), (4, 8, 1)]
)
def test_fair_share(shards: int, live: int, share: int) -> None:
    assert fair_share(shards, live) == share


def leases(
    *owners: str | None, expired: frozenset[int] = frozenset(), free_for: float = 0.0
) -> dict[int, Lease]:
    out = {}
    for k, owner in enumerate(owners):
        if owner is None:
            out[k] = Lease(k, None, NOW - free_for, 1)
        elif k in expired:
            out[k] = Lease(k, owner, NOW - free_for, 1)
        else:
            out[k] = Lease(k, owner, NOW + LEASE, 1)
    return out


@pytest.mark.parametrize(
    ("name", "table", "live", "expected"),
    [
        ("alone, all free: takes all", leases(None, None, None, None), 1, Plan((0, 1, 2, 3), ())),
        ("two alive, all free: takes half", leases(None, None, None, None), 2, Plan((0, 1), ())),
        ("newcomer: nothing free yet", leases("a", "a", "a", "a"), 2, Plan((), ())),
        ("other's share taken, rest free", leases("b", "b", None, None), 2, Plan((2, 3), ())),
        (
            "dead peer's leases ran out",
            leases("me", "me", "dead", "dead", expired=frozenset({2, 3})),
            1,
            Plan((2, 3), ()),
        ),
        (
            "at share, free shard not yet orphaned: left for the others",
            leases("me", "me", None, "b"),
            3,
            Plan((), ()),
        ),
        (
            "at share, shard free longer than a lease: orphaned, taken",
            leases("me", "me", None, "b", free_for=LEASE + 1),
            3,
            Plan((2,), ()),
        ),
    ],
)
def test_plan_takes_up_to_the_fair_share(
    name: str, table: dict[int, Lease], live: int, expected: Plan
) -> None:
    assert plan("me", table, live, NOW, LEASE) == expected, name


def test_plan_gives_back_the_surplus_highest_first() -> None:
    table = leases("me", "me", "me", "me")
    assert plan("me", table, 2, NOW, LEASE) == Plan((), (2, 3))
    assert plan("me", table, 3, NOW, LEASE) == Plan((), (2, 3))
    assert plan("me", table, 4, NOW, LEASE) == Plan((), (1, 2, 3))


def test_ack_router_gives_each_ingest_the_count_of_its_own_messages_stored() -> None:
    router = AckRouter(3)
    for ingest in (0, 1, 0, 2, 2, 0):  # the collector's messages 1..6
        router.accepted(ingest)
    assert router.committed(0) == {}
    assert router.committed(3) == {0: 2, 1: 1}
    assert router.committed(3) == {}  # nothing new
    assert router.committed(6) == {2: 2, 0: 3}
    router.accepted(1)
    assert router.committed(7) == {1: 2}
