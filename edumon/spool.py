"""A bounded disk spool of MQTT messages: SQLite in WAL mode, standard library only.

One module for both agents: ``edumon/spool.py`` is the original (the school agent imports it),
and the terminal agent, which ships without the edumon package, carries a byte-identical copy
made by ``agents/terminal/sync_wire.py`` (a test fails when the two differ).

Messages wait here while the broker is unreachable and leave only when the broker has
acknowledged them (``ack``). The spool is bounded in bytes: when a new message does not fit, the
oldest ones are dropped and counted (``dropped``, kept in the file too). Each ``put`` is one
committed transaction with ``synchronous=FULL``, so a message the call returned for survives a
``kill -9`` and a power cut; at worst one message is sent twice (it was acknowledged, the process
died before ``ack``), never lost. docs/wire-protocol.md ("Historical heartbeats") says how the
agent uses it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Bytes counted per message besides topic and payload: SQLite's row and index overhead, roughly.
# The bound is on these counted bytes; the file is larger by its pages' slack and the WAL.
ENTRY_OVERHEAD_BYTES: Final = 64
MIN_MAX_BYTES: Final = 4096

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS spool ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " size INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One spooled message; ``id`` grows with every ``put`` (the sending order)."""

    id: int
    topic: str
    payload: bytes


class SpoolError(Exception):
    """The spool file cannot be opened or written (disk full, read-only, corrupt)."""


class Spool:
    """Messages waiting for the broker, oldest first.

    Thread-safe: one connection behind a lock (an MQTT client acknowledges from its own thread).
    """

    def __init__(self, path: Path | str, max_bytes: int) -> None:
        """Open (or create) the spool at ``path``.

        A file that is not a SQLite database (or is corrupt) is renamed aside
        (``<name>.corrupt-<unix time>``) and a new one is started: what it held is lost, and that
        is better than a terminal that stops spooling for ever.

        Raises:
            ValueError: ``max_bytes`` below ``MIN_MAX_BYTES``.
            SpoolError: The file cannot be created or opened.
        """
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"max_bytes must be at least {MIN_MAX_BYTES}, not {max_bytes}")
        path = Path(path)
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open(path)
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    raise  # cannot open or lock: not a reason to throw the file away
                aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
                os.replace(path, aside)
                for suffix in ("-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                self._db = self._open(path)
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
            self._count: int = row[0]
            self._bytes: int = row[1]
            found = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
            self._dropped: int = found[0] if found is not None else 0
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open spool {path}: {exc}") from None

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None, timeout=5.0, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL in WAL mode: every commit is on the disk before put() returns (a classroom
            # terminal is switched off at the wall, not shut down).
            db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("SELECT COUNT(*) FROM spool").fetchone()  # reads a corrupt file's pages
        except BaseException:
            db.close()
            raise
        return db

    def __len__(self) -> int:
        """Messages waiting."""
        return self._count

    @property
    def pending(self) -> int:
        """Messages waiting (not yet acknowledged): ``len(spool)``."""
        return self._count

    @property
    def pending_bytes(self) -> int:
        """Counted bytes waiting: ``used_bytes``."""
        return self._bytes

    @property
    def used_bytes(self) -> int:
        """Counted bytes waiting (topic, payload and ``ENTRY_OVERHEAD_BYTES`` each)."""
        return self._bytes

    @property
    def dropped(self) -> int:
        """Messages dropped to stay within ``max_bytes`` since the file was created."""
        return self._dropped

    def put(self, topic: str, payload: bytes) -> int:
        """Append a message, dropping the oldest ones while it does not fit; returns its id.

        A message larger than ``max_bytes`` on its own is not kept: it counts as dropped and
        the id returned is 0.

        Raises:
            SpoolError: The disk refused the write; the spool is as it was before the call.
        """
        size = len(topic.encode()) + len(payload) + ENTRY_OVERHEAD_BYTES
        with self._lock:
            return self._put(topic, payload, size)

    def _put(self, topic: str, payload: bytes, size: int) -> int:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if size > self.max_bytes:
                    self._count_dropped(1)
                    db.execute("COMMIT")
                    self._dropped += 1
                    return 0
                total, count, dropped = self._bytes, self._count, 0
                while total + size > self.max_bytes and count:
                    oldest = db.execute(
                        "SELECT id, size FROM spool ORDER BY id LIMIT 64"
                    ).fetchall()
                    for entry_id, entry_size in oldest:
                        if total + size <= self.max_bytes:
                            break
                        db.execute("DELETE FROM spool WHERE id = ?", (entry_id,))
                        total -= entry_size
                        count -= 1
                        dropped += 1
                if dropped:
                    self._count_dropped(dropped)
                cursor = db.execute(
                    "INSERT INTO spool (topic, payload, size) VALUES (?, ?, ?)",
                    (topic, payload, size),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None
        self._bytes, self._count = total + size, count + 1
        self._dropped += dropped
        entry_id = cursor.lastrowid
        assert entry_id is not None
        return entry_id

    def _count_dropped(self, n: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('dropped', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
            (n,),
        )

    def peek(self, n: int, after: int = 0) -> list[Entry]:
        """The ``n`` oldest messages with an id above ``after``, oldest first; they stay.

        Raises:
            SpoolError: The file cannot be read.
        """
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, topic, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                    (after, n),
                ).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read spool {self.path}: {exc}") from None
        return [Entry(entry_id, topic, bytes(payload)) for entry_id, topic, payload in rows]

    def get(self, entry_id: int) -> Entry | None:
        """One message by id, if it is still waiting.

        Raises:
            SpoolError: The file cannot be read.
        """
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT id, topic, payload FROM spool WHERE id = ?", (entry_id,)
                ).fetchall()
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot read spool {self.path}: {exc}") from None
        return Entry(row[0][0], row[0][1], bytes(row[0][2])) if row else None

    def ack(self, entry_id: int) -> bool:
        """Remove a message the broker acknowledged; False if it was not there (dropped, or
        acknowledged already).

        Raises:
            SpoolError: The disk refused the write (the message stays and is sent again).
        """
        try:
            with self._lock:
                # fetchall, not fetchone: a RETURNING statement not stepped to its end keeps
                # its write transaction open, and the next put() would wait for it.
                rows = self._db.execute(
                    "DELETE FROM spool WHERE id = ? RETURNING size", (entry_id,)
                ).fetchall()
                if not rows:
                    return False
                self._bytes -= rows[0][0]
                self._count -= 1
                return True
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot write spool {self.path}: {exc}") from None

    def close(self) -> None:
        """Close the file (checkpointing the WAL into it)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
