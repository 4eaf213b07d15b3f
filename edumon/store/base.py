"""The store's core: one engine, bounded operations, database errors as StoreError, the schema.

``Store`` (edumon.store.repository) is composed of this and of its writes, reads and report
queries (``writes``, ``reads``, ``reports``), which share what is defined here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util.exc import CommandError
from sqlalchemy import (
    Connection,
    Engine,
    ExceptionContext,
    Insert,
    Row,
    Select,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from edumon.errors import StoreError

logger = logging.getLogger("edumon.store.repository")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DEFAULT_TIMEOUT_SECONDS = 60.0
PING_TIMEOUT_SECONDS = 5.0
WAL_ATTEMPTS = 10

# Rows per executemany call. Each call is one pipelined round trip (asyncpg) or one prepared
# statement run in the driver's thread (aiosqlite); between calls the event loop gets a turn,
# so a million-row batch does not freeze the sources feeding the collector.
WRITE_CHUNK_ROWS = 5_000

# pg_advisory_xact_lock key: collectors starting together must not race to create the schema.
_MIGRATION_LOCK_KEY = 0x6564756D6F6E  # "edumon"

# Exceptions that mean "the database failed", as opposed to a bug in the caller. asyncpg's
# connect errors (refused, DNS failure, timeouts) arrive as OSError, not wrapped by SQLAlchemy.
_DB_ERRORS = (SQLAlchemyError, OSError, CommandError)


def reason(exc: BaseException, password: str | None) -> str:
    """A one-line cause for an error message: never SQL parameters, never the password."""
    base: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        base = exc.orig
    lines = str(base).strip().splitlines()
    reason = lines[0] if lines else type(base).__name__
    if isinstance(base, OSError) and not reason.startswith(type(base).__name__):
        reason = f"{type(base).__name__}: {reason}"
    if password:
        reason = reason.replace(password, "***")
    return reason[:300]


def chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _upgrade_to_head(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


SQLITE_READ_TIMEOUT_SECONDS = 1.0
SQLITE_READERS = 2
"""SQLite connections kept open for the API's reads (beside the writer's)."""

# SQLite errors after which a connection is not reused: one opened while the file could not be
# written stays read-only for good, and one that met an I/O error is suspect. Recognised by
# message, as both drivers (sqlite3, aiosqlite) report them.
_SPOILED_SQLITE = ("readonly database", "disk I/O error", "unable to open database file")


def no_mmap(dbapi_connection: Any, _record: Any) -> None:
    """No memory-mapped I/O of a SQLite file, whatever the library's compiled-in default.

    A mapped page the disk cannot supply (file truncated, disk failing) is a SIGBUS that kills
    the process, where a read() is an error edumon reports (docs/storage.md).
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA mmap_size=0")
    finally:
        cursor.close()


def drop_spoiled_sqlite_connections(context: ExceptionContext) -> None:
    """A ``handle_error`` hook: a SQLite connection that met a disk failure is not reused.

    Marked as a disconnect, the pool closes it (and those opened before it) instead of handing
    it out again, so the writes that follow the disk's recovery get fresh, writable
    connections.
    """
    if any(s in str(context.original_exception) for s in _SPOILED_SQLITE):
        context.is_disconnect = True


class StoreBase:
    """The engine and what every store operation shares; see ``Store``."""

    _sqlite_reader: Engine | None = None
    """The API's synchronous reader of a SQLite file (``StoreReads``), opened on first use."""

    def __init__(
        self,
        engine: AsyncEngine,
        name: str,
        *,
        password: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._engine = engine
        self._name = name
        self._password = password
        self._timeout = timeout_seconds
        self._dialect = engine.dialect.name
        # (device, interface) pairs already in the interfaces table, so the hot path inserts
        # only interfaces it has not seen since start-up.
        self._seen_interfaces: set[tuple[str, str]] = set()
        self.write_failing: str | None = None
        """Why the last write failed (the database not named); None once a write succeeds
        (and before any). Read by /readyz and ``edumon_store_available``."""
        self._file: tuple[Path, int, int] | None = None
        """A SQLite file's path, device and inode as opened (``watch_file``)."""

    @property
    def name(self) -> str:
        """The database URL with its password hidden, for logs and messages."""
        return self._name

    def __repr__(self) -> str:
        return f"Store({self._name!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        """Bound an operation in time and turn database failures into StoreError."""
        limit = self._timeout
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError as exc:
            raise StoreError(f"database {self._name}: {doing} took over {limit:g} s") from exc
        except _DB_ERRORS as exc:
            raise StoreError(
                f"database {self._name}: {doing} failed: {reason(exc, self._password)}"
            ) from exc

    def watch_file(self, path: Path) -> None:
        """Refuse writes while ``path`` is not the SQLite file opened (``open_store`` calls it).

        A database file removed or replaced under a running process stays open: writes would
        go on into a file nobody can open again and be lost when edumon stops. Refused, they
        wait in memory (bounded) and /readyz says why, until the file is put back.

        Raises:
            StoreError: ``path`` cannot be found.
        """
        try:
            found = path.stat()
        except OSError as exc:
            raise StoreError(f"database {self._name}: {reason(exc, None)}") from exc
        self._file = (path, found.st_dev, found.st_ino)

    def _check_file(self) -> None:
        if self._file is None:
            return
        path, device, inode = self._file
        try:
            found = path.stat()
        except OSError as exc:
            found = None
            cause = exc.strerror or type(exc).__name__
        else:
            cause = "another file is in its place"
        if found is None or (found.st_dev, found.st_ino) != (device, inode):
            raise StoreError(
                f"database {self._name}: 数据库文件已被删除或替换，不再写入；请放回原文件 / the "
                f"database file was removed or replaced while edumon had it open ({cause}): "
                "not writing into a file that is no longer there; put it back (rows wait in "
                "memory meanwhile)"
            )

    @asynccontextmanager
    async def _writing(self, doing: str) -> AsyncIterator[None]:
        """``_guard`` for a write, remembering whether the database takes writes.

        A disk that fails (read-only, full, an unwritable WAL) fails writes while reads and
        pings still succeed: ``write_failing`` is what tells.
        """
        if self.write_failing is not None and self._on_sqlite_file():
            # SQLite opens a file it cannot write read-only, for good: a connection opened
            # while the disk failed (by a read meanwhile) would fail the writes after its
            # recovery. While writes fail, each one starts on fresh connections.
            await self._engine.dispose()
        try:
            self._check_file()
            async with self._guard(doing):
                yield
        except StoreError as exc:
            # Without the database's name: /readyz shows it to anyone, and a path or host
            # is not theirs to see.
            self.write_failing = str(exc).removeprefix(f"database {self._name}: ")
            raise
        self.write_failing = None

    def _insert(self, table: Table) -> Any:
        """The dialect's INSERT, which offers ON CONFLICT on both backends."""
        if self._dialect == "postgresql":
            return pg_insert(table)
        return sqlite_insert(table)

    def _insert_ignore(self, table: Table) -> Insert:
        stmt: Insert = self._insert(table).on_conflict_do_nothing()
        return stmt

    def _upsert(self, table: Table) -> Insert:
        stmt = self._insert(table)
        keys = {c.name for c in table.primary_key.columns}
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        upsert: Insert = stmt.on_conflict_do_update(index_elements=sorted(keys), set_=update)
        return upsert

    async def connect(self) -> None:
        """Check that the database answers (``open_store`` already did).

        Raises:
            StoreError: the database cannot be reached.
        """
        async with self._guard("connecting"), self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def use_wal(self) -> None:
        """Put a SQLite database in WAL mode, so the API reads while the collector writes.

        The mode is stored in the file. Switching needs an exclusive lock that SQLite does not
        wait for, so processes opening one new file together retry briefly.

        Raises:
            StoreError: the database stayed in another journal mode.
        """
        mode: object = None
        for attempt in range(WAL_ATTEMPTS):
            try:
                async with self._guard("enabling WAL"), self._engine.connect() as conn:
                    mode = (await conn.exec_driver_sql("PRAGMA journal_mode=WAL")).scalar()
            except StoreError as exc:
                if attempt == WAL_ATTEMPTS - 1:
                    raise
                logger.debug("%s; retrying", exc)
            # An in-memory database answers "memory" and cannot use WAL.
            if mode in ("wal", "memory"):
                return
            await asyncio.sleep(0.01 * 2**attempt)
        raise StoreError(f"database {self._name}: cannot enable WAL (journal mode is {mode})")

    async def migrate(self) -> None:
        """Bring the schema to the newest version (``open_store`` already did).

        Raises:
            StoreError: the migration failed, or the database is newer than this edumon.
        """
        try:
            async with self._guard("migrating the schema"), self._engine.begin() as conn:
                # Processes starting together must not race to create the same tables: take
                # the database's write lock first. SQLite's DDL is transactional too, so an
                # interrupted migration leaves the old schema, not half of the new one.
                if self._dialect == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                else:
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                await conn.run_sync(_upgrade_to_head)
        except StoreError as exc:
            if isinstance(exc.__cause__, CommandError):
                raise StoreError(
                    f"{exc}; the database was probably migrated by a newer edumon, "
                    "so upgrade edumon or point it at another database"
                ) from exc.__cause__
            raise

    async def ping(self) -> bool:
        """Whether the database answers a trivial query within a few seconds (never raises)."""
        try:
            async with asyncio.timeout(PING_TIMEOUT_SECONDS), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (*_DB_ERRORS, TimeoutError) as exc:
            logger.warning("database %s: ping failed: %s", self._name, reason(exc, self._password))
            return False
        return True

    def _on_sqlite_file(self) -> bool:
        """Whether the database is a SQLite file (not an in-memory SQLite database)."""
        database = self._engine.url.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        return self._dialect == "sqlite" and not in_memory

    async def _read_in_one_hop(self, doing: str, query: Select[Any]) -> list[Row[Any]]:
        """The rows of a bounded, indexed read the API serves while the event loop is busy.

        On a SQLite file the query runs right here, on a plain (synchronous) connection: one
        index range of at most a thousand rows takes about a millisecond, while under load a
        hop to a worker thread and back waited tens of milliseconds in the loop's queue, and
        through aiosqlite every step (checkout, execute, fetch, rollback) made such a hop. WAL
        lets this reader run beside the writer without waiting for it. PostgreSQL (asyncpg) and
        an in-memory SQLite database use the async engine. Only queries bounded by an index
        and a limit come here (``event_page``, ``last_events_before``, and the
        report's ``monitor_runs`` and ``rolled_up_days``: a handful of rows each).
        """
        url = self._engine.url
        if not self._on_sqlite_file():
            async with self._guard(doing), self._engine.connect() as conn:
                return list((await conn.execute(query)).all())
        reader = self._sqlite_reader
        if reader is None:
            # Connections kept open (opening one reads the schema each time), closed by
            # Store.aclose. A lock is not waited for long: WAL readers seldom meet one.
            reader = self._sqlite_reader = create_engine(
                url.set(drivername="sqlite"),
                poolclass=QueuePool,
                pool_size=SQLITE_READERS,
                max_overflow=SQLITE_READERS,
                connect_args={"timeout": SQLITE_READ_TIMEOUT_SECONDS},
            )
            event.listen(reader, "connect", no_mmap)
            event.listen(reader, "handle_error", drop_spoiled_sqlite_connections)

        async with self._guard(doing):
            with reader.connect() as conn:
                return list(conn.execute(query).all())

    async def aclose(self) -> None:
        """Close every pooled connection; the Store is unusable afterwards."""
        await self._engine.dispose()
        if self._sqlite_reader is not None:
            self._sqlite_reader.dispose()
            self._sqlite_reader = None
