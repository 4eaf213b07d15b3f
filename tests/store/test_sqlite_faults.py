"""A SQLite store on a failing disk: errors as StoreError, never a mapped file, back when fixed.

Real files on a real file system; ``chattr +i`` (as root) makes one unwritable even for root.
The daemon-level tests are in tests/test_storage_faults.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from edumon.domain.models import Event, EventKind
from edumon.errors import StoreError
from edumon.store import Store, open_store


def event(n: int) -> Event:
    return Event(time.time(), EventKind.DEVICE_REBOOT, "sw-a", message=f"reboot {n}")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "edumon.db"
    yield path
    # Never leave an immutable file behind: pytest could not remove it.
    for suffix in ("", "-wal", "-shm"):
        subprocess.run(["chattr", "-i", f"{path}{suffix}"], capture_output=True, check=False)


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{db}", timeout_seconds=15)
    try:
        yield opened
    finally:
        await opened.aclose()


def chattr(flag: str, path: Path) -> None:
    assert os.geteuid() == 0, "chattr +i needs root"
    subprocess.run(["chattr", flag, str(path)], check=True, timeout=30)


async def test_no_shared_memory_file_and_no_mapped_database(db: Path, store: Store) -> None:
    await store.write(events=[event(1)])
    assert (await store.events())[0].message == "reboot 1"
    assert db.with_name("edumon.db-wal").exists()
    assert not db.with_name("edumon.db-shm").exists()
    async with store._engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA mmap_size"))).scalar() == 0
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


def read_in_another_process(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0.2); "
            "c.execute('SELECT count(*) FROM events')",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file."""
    filler = disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


async def test_another_process_cannot_open_the_database(db: Path, store: Store) -> None:
    await store.write(events=[event(1)])
    other = await asyncio.to_thread(read_in_another_process, db)
    assert other.returncode != 0
    assert "database is locked" in other.stderr


async def test_an_unwritable_wal_fails_writes_until_it_is_writable_again(
    db: Path, store: Store, tmp_path: Path
) -> None:
    await store.write(events=[event(1)])
    assert store.write_failing is None
    wal = db.with_name("edumon.db-wal")
    chattr("+i", wal)
    # "disk I/O error" or "attempt to write a readonly database", as SQLite meets it.
    with pytest.raises(StoreError, match="writing 1 rows failed"):
        await store.write(events=[event(2)])
    assert store.write_failing is not None
    assert store.write_failing.startswith("writing 1 rows failed: ")
    assert str(tmp_path) not in store.write_failing  # /readyz shows it to anyone
    # Reads still answer: only the writes tell.
    assert await store.ping()
    chattr("-i", wal)
    await store.write(events=[event(2)])
    assert store.write_failing is None
    assert [e.message for e in await store.events()] == ["reboot 2", "reboot 1"]


async def test_a_connection_opened_while_the_file_was_unwritable_is_not_kept(
    db: Path, store: Store
) -> None:
    """Opened then, a connection is read-only for good; it must not serve the writes after."""
    await store.write(events=[event(1)])
    chattr("+i", db)
    chattr("+i", db.with_name("edumon.db-wal"))
    await store._engine.dispose()  # the next write opens a new connection
    with pytest.raises(StoreError):
        await store.write(events=[event(2)])
    chattr("-i", db)
    chattr("-i", db.with_name("edumon.db-wal"))
    await store.write(events=[event(2)])
    assert store.write_failing is None
    assert len(await store.events()) == 2


async def test_a_database_file_removed_or_replaced_is_not_written(
    db: Path, store: Store, tmp_path: Path
) -> None:
    await store.write(events=[event(1)])
    aside = tmp_path / "aside.db"
    os.rename(db, aside)
    with pytest.raises(StoreError, match="removed or replaced"):
        await store.write(events=[event(2)])
    assert store.write_failing is not None
    os.close(os.open(db, os.O_CREAT | os.O_WRONLY))  # another file in its place
    with pytest.raises(StoreError, match="another file is in its place"):
        await store.write(events=[event(2)])
    os.replace(aside, db)
    await store.write(events=[event(2)])
    assert store.write_failing is None
    assert [e.message for e in await store.events()] == ["reboot 2", "reboot 1"]


async def test_a_full_disk_fails_writes_until_there_is_room(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    await asyncio.to_thread(mount_tmpfs, disk, "4m")
    try:
        store = await open_store(f"sqlite:///{disk / 'edumon.db'}", timeout_seconds=15)
        try:
            await store.write(events=[event(1)])
            filler = await asyncio.to_thread(fill, disk)
            big = [event(n) for n in range(2, 2000)]
            with pytest.raises(StoreError, match="full"):
                await store.write(events=big)
            assert store.write_failing is not None
            os.unlink(filler)
            await store.write(events=big)
            assert store.write_failing is None
            assert len(await store.events(limit=5000)) == 1 + len(big)
        finally:
            await store.aclose()
    finally:
        await asyncio.to_thread(unmount, disk)
