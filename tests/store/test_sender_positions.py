"""Sender positions (migration 0006): written with the rows in one transaction, read back."""

from __future__ import annotations

from edumon.store.protocol import SenderPosition
from edumon.store.repository import Store


def position(seq: int, boot: str = "b1") -> SenderPosition:
    return SenderPosition(
        school="S1",
        role="terminal",
        sender="T1",
        boot_id=boot,
        birth_seq=3,
        seq=seq,
        observed_at=1_700_000_000.25 + seq,
        at=1_700_000_001.5 + seq,
    )


async def test_positions_are_replaced_per_sender_and_read_back(store: Store) -> None:
    assert await store.sender_positions() == []
    await store.write(positions=[position(5)])
    await store.write(positions=[position(9), replace_sender(position(2), "T2")])
    got = sorted(await store.sender_positions(), key=lambda p: p.sender)
    assert got == [position(9), replace_sender(position(2), "T2")]
    await store.write(positions=[position(1, boot="b2")])  # a new boot starts low
    got = {p.sender: p for p in await store.sender_positions()}
    assert (got["T1"].boot_id, got["T1"].seq) == ("b2", 1)


def replace_sender(p: SenderPosition, sender: str) -> SenderPosition:
    return SenderPosition(
        p.school, p.role, sender, p.boot_id, p.birth_seq, p.seq, p.observed_at, p.at
    )
