"""The disk spool: FIFO until acked, bounded with dropped counted, and durable across kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edumon.spool import Spool


def test_fifo_until_acked(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", 1 << 20) as spool:
        ids = [spool.put("t/a", f"m{i}".encode()) for i in range(5)]
        assert ids == sorted(ids)
        assert [m.payload for m in spool.peek(3)] == [b"m0", b"m1", b"m2"]
        assert [m.payload for m in spool.peek(10, after=ids[3])] == [b"m4"]
        assert spool.ack(ids[0])
        assert not spool.ack(ids[0])
        assert spool.ack(ids[2])
        assert [m.id for m in spool.peek(10)] == [ids[1], ids[3], ids[4]]
        assert spool.pending == 3
        assert spool.get(ids[1]) is not None
        assert spool.get(ids[0]) is None
        assert spool.dropped == 0


def test_full_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Spool(path, 1000) as spool:
        for i in range(30):
            spool.put("t", bytes([i]) * 99)  # 100 bytes with the topic
        assert spool.pending == 10
        assert spool.pending_bytes == 1000
        assert spool.dropped == 20
        assert spool.peek(1)[0].payload[0] == 20  # the oldest kept is the 21st
    with Spool(path, 1000) as again:  # the count and the messages survive a restart
        assert again.dropped == 20
        assert again.pending == 10


def test_bad_bound() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Spool("/nonexistent/never", 0)


def test_what_put_returned_survives_kill_9(tmp_path: Path) -> None:
    """A child puts messages as fast as it can and prints each id once put() returned; after
    SIGKILL every printed id is in the file, and the WAL file opens clean."""
    path = tmp_path / "s.db"
    child = textwrap.dedent(
        f"""
        import sys
        from edumon.spool import Spool
        spool = Spool({str(path)!r}, 1 << 30)
        i = 0
        while True:
            i += 1
            print(spool.put("t", b"x" * 200), flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    assert proc.stdout is not None
    confirmed: list[int] = []
    for line in proc.stdout:
        confirmed.append(int(line))
        if len(confirmed) >= 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    with Spool(path, 1 << 30) as spool:
        kept = {m.id for m in spool.peek(100_000)}
    assert set(confirmed) <= kept


def test_put_after_ack(tmp_path: Path) -> None:
    """An ack leaves no statement open: the next put does not wait on the ack's transaction."""
    with Spool(tmp_path / "s.db", 1 << 20) as spool:
        for i in range(50):
            spool.ack(spool.put("t", b"x"))
            assert spool.get(i + 100) is None
        assert spool.pending == 0
