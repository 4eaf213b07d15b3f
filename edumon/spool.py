"""A bounded disk spool (SQLite in WAL mode) for store-and-forward: messages wait here until acked.

Standard library only and no edumon imports, so an agent can carry a copy of this file (as the
terminal agent carries ``wire.py``). docs/wire-protocol.md ("Store-and-forward") describes how
the agents use it.

- ``put`` commits before it returns (``synchronous=FULL``): a message handed to the spool
  survives ``kill -9`` and a power cut.
- ``peek`` returns the oldest messages without removing them; ``ack`` removes one, once the
  broker has acknowledged it. A message is therefore sent at least once; the receiver
  deduplicates (by sender, boot id and sequence number in edumon's wire protocol).
- The spool is bounded by ``max_bytes`` of payload and topic: when a ``put`` would pass it,
  the oldest messages are dropped and counted in ``dropped`` (kept in the file, so the count
  survives restarts).

Thread-safe: one connection behind a lock (an MQTT client acknowledges from its own thread).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spool_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO spool_meta (key, value) VALUES ('dropped', 0);
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One message waiting in the spool. ``id`` grows with every ``put`` (oldest first)."""

    id: int
    topic: str
    payload: bytes


class Spool:
    """A bounded FIFO of MQTT messages on disk.

    Args:
        path: the SQLite file (created with its parent directory).
        max_bytes: the most payload and topic bytes kept; the oldest go first beyond it.
    """

    def __init__(self, path: Path | str, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: every committed put is on disk before put() returns, power cut included.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM spool").fetchall()[0]
        self._bytes = int(row[0])
        self._count = int(row[1])

    @property
    def dropped(self) -> int:
        """Messages dropped to keep within ``max_bytes``, since the file was created."""
        with self._lock:
            rows = self._db.execute("SELECT value FROM spool_meta WHERE key = 'dropped'").fetchall()
            return int(rows[0][0])

    @property
    def pending(self) -> int:
        """Messages waiting (not yet acknowledged)."""
        with self._lock:
            return self._count

    @property
    def pending_bytes(self) -> int:
        """Payload and topic bytes waiting."""
        with self._lock:
            return self._bytes

    def put(self, topic: str, payload: bytes) -> int:
        """Keep a message until it is acknowledged; its id. Drops the oldest when full.

        A message larger than ``max_bytes`` by itself is kept alone (everything else dropped).
        """
        size = len(payload) + len(topic.encode())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = 0
                while self._count and self._bytes + size > self.max_bytes:
                    oldest = self._db.execute(
                        "SELECT id, size FROM spool ORDER BY id LIMIT 64"
                    ).fetchall()
                    for row_id, row_size in oldest:
                        if self._bytes + size <= self.max_bytes:
                            break
                        self._db.execute("DELETE FROM spool WHERE id = ?", (row_id,))
                        self._bytes -= int(row_size)
                        self._count -= 1
                        dropped += 1
                if dropped:
                    self._db.execute(
                        "UPDATE spool_meta SET value = value + ? WHERE key = 'dropped'", (dropped,)
                    )
                cur = self._db.execute(
                    "INSERT INTO spool (topic, payload, size) VALUES (?, ?, ?)",
                    (topic, payload, size),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._recount()
                raise
            self._bytes += size
            self._count += 1
            row_id = cur.lastrowid
            assert row_id is not None
            return int(row_id)

    def peek(self, n: int, after: int = 0) -> list[Spooled]:
        """The ``n`` oldest messages (with an id above ``after``), not removed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                (after, n),
            ).fetchall()
        return [Spooled(int(i), str(t), bytes(p)) for i, t, p in rows]

    def get(self, message_id: int) -> Spooled | None:
        """One message by id, if it is still waiting."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM spool WHERE id = ?", (message_id,)
            ).fetchall()
        return Spooled(int(rows[0][0]), str(rows[0][1]), bytes(rows[0][2])) if rows else None

    def ack(self, message_id: int) -> bool:
        """Remove a message the receiver has acknowledged; False if it was not there."""
        with self._lock:
            # fetchall, not fetchone: a RETURNING statement not stepped to its end keeps its
            # write transaction open, and the next put() would wait for it for ever.
            rows = self._db.execute(
                "DELETE FROM spool WHERE id = ? RETURNING size", (message_id,)
            ).fetchall()
            if not rows:
                return False
            self._bytes -= int(rows[0][0])
            self._count -= 1
            return True

    def _recount(self) -> None:
        row = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM spool").fetchall()[0]
        self._bytes = int(row[0])
        self._count = int(row[1])

    def close(self) -> None:
        """Close the file (what is in it stays)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
