"""The terminal agent's disk spool: bounded, drops the oldest (counted), acks, survives kill -9."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from edumon_terminal_agent.config import ConfigError, load_config
from edumon_terminal_agent.spool import ENTRY_OVERHEAD_BYTES, MIN_MAX_BYTES, Spool, SpoolError

from tests.agents.support import AGENT_DIR

TOPIC = "edumon/v1/d/s/terminal/t/heartbeat"


def size(payload: bytes) -> int:
    return len(TOPIC) + len(payload) + ENTRY_OVERHEAD_BYTES


def test_put_peek_ack_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", 1 << 20)
    ids = [spool.put(TOPIC, f"m{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert len(spool) == 5
    assert [e.payload for e in spool.peek(3)] == [b"m0", b"m1", b"m2"]
    assert [e.payload for e in spool.peek(10, after=ids[2])] == [b"m3", b"m4"]
    assert spool.peek(3) == spool.peek(3)  # peeking takes nothing away
    # Acknowledged out of order: each leaves, the rest keep their order.
    assert spool.ack(ids[1])
    assert not spool.ack(ids[1])  # already gone
    assert spool.ack(ids[0])
    assert [e.payload for e in spool.peek(10)] == [b"m2", b"m3", b"m4"]
    assert spool.used_bytes == sum(size(f"m{i}".encode()) for i in (2, 3, 4))
    assert spool.dropped == 0
    spool.close()


def test_bounded_in_bytes_dropping_the_oldest_and_counting_them(tmp_path: Path) -> None:
    payload = b"x" * 400
    max_bytes = 10 * size(payload)
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes)
    ids = [spool.put(TOPIC, payload) for _ in range(10)]
    assert len(spool) == 10
    assert spool.dropped == 0
    assert spool.used_bytes == max_bytes
    ids += [spool.put(TOPIC, payload) for _ in range(3)]
    assert len(spool) == 10
    assert spool.dropped == 3
    assert spool.used_bytes <= max_bytes
    assert [e.id for e in spool.peek(100)] == ids[3:]  # the three oldest went
    # One larger message makes room by dropping as many of the oldest as it takes.
    big = spool.put(TOPIC, b"y" * (3 * size(payload)))
    assert spool.used_bytes <= max_bytes
    assert spool.dropped == 3 + 4
    assert spool.peek(100)[-1].id == big
    # A message that can never fit is not kept, and counted as dropped.
    assert spool.put(TOPIC, b"z" * max_bytes) == 0
    assert spool.dropped == 8
    assert spool.peek(100)[-1].id == big
    spool.close()
    # The count is kept in the file.
    reopened = Spool(tmp_path / "spool.sqlite3", max_bytes)
    assert reopened.dropped == 8
    assert len(reopened) == 7
    assert reopened.used_bytes <= max_bytes
    reopened.close()


def test_file_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    Spool(path, MIN_MAX_BYTES).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_too_small_a_bound_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        Spool(tmp_path / "spool.sqlite3", MIN_MAX_BYTES - 1)


_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from edumon_terminal_agent.spool import Spool
    spool = Spool(Path(sys.argv[1]), 1 << 20)
    ids = [spool.put("t", b"m%d" % i) for i in range(50)]
    for entry_id in ids[:20]:
        spool.ack(entry_id)
    sys.stdout.write(" ".join(map(str, ids)) + "\\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: a crash
    """
)


def test_everything_put_and_not_acked_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(AGENT_DIR))
    result = subprocess.run(
        [sys.executable, "-c", _WRITER, str(path)],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == -9, result.stderr.decode()
    ids = [int(x) for x in result.stdout.split()]
    assert Path(f"{path}-wal").exists()  # the WAL was never checkpointed into the file
    spool = Spool(path, 1 << 20)
    assert [e.id for e in spool.peek(100)] == ids[20:]
    assert [e.payload for e in spool.peek(100)] == [b"m%d" % i for i in range(20, 50)]
    # New messages go after the survivors, never reusing an id.
    assert spool.put("t", b"next") > ids[-1]
    spool.close()


def test_corrupt_file_is_moved_aside_and_a_new_spool_started(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    path.write_bytes(b"this is not a database" * 200)
    spool = Spool(path, 1 << 20)
    assert len(spool) == 0
    spool.put(TOPIC, b"m")
    spool.close()
    assert [p.name for p in tmp_path.glob("spool.sqlite3.corrupt-*")]


def test_unwritable_directory_is_a_spool_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="cannot open spool"):
        Spool(blocker / "spool.sqlite3", 1 << 20)


def test_spool_settings_from_the_file_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[terminal]\ndistrict = "d"\nschool = "s"\nid = "t1"\n'
        f'[agent]\nstate_dir = "{tmp_path}"\nspool_max_bytes = 65536\n'
        "spool_drain_per_second = 2.5\n",
        encoding="utf-8",
    )
    config, _ = load_config(["-c", str(path)], environ={})
    assert config.spool_path == tmp_path / "spool.t1.sqlite3"
    assert config.spool_max_bytes == 65536
    assert config.spool_drain_per_second == 2.5
    config, _ = load_config(
        ["-c", str(path), "--spool-path", str(tmp_path / "x.db"), "--spool-max-bytes", "0"],
        environ={},
    )
    assert config.spool_path == tmp_path / "x.db"
    assert config.spool_max_bytes == 0  # no spool
    assert load_config(["-c", str(path)], environ={})[0].spool_max_bytes == 65536


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("spool_max_bytes = 100", "agent.spool_max_bytes: 0 (no spool) or at least 4096"),
        ("spool_max_bytes = -1", "agent.spool_max_bytes: must be between"),
        ('spool_max_bytes = "8M"', "agent.spool_max_bytes: expected an integer"),
        ("spool_drain_per_second = 0", "agent.spool_drain_per_second: must be between"),
    ],
)
def test_bad_spool_settings_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[terminal]\ndistrict = "d"\nschool = "s"\nid = "t1"\n[agent]\n{line}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(["-c", str(path)], environ={})
