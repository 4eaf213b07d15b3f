"""The store: inventory, samples and events in SQLite or PostgreSQL (SQLAlchemy 2, async)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util.exc import CommandError
from pydantic import SecretStr
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Delete,
    Insert,
    Table,
    cast,
    delete,
    event,
    extract,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from edumon.config import Config
from edumon.domain.models import (
    DeviceSample,
    Event,
    EventKind,
    InterfaceSample,
    OperStatus,
    TerminalSample,
)
from edumon.errors import StoreError
from edumon.store import tables as t
from edumon.store.protocol import ClassroomAvailability

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DEFAULT_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 5.0
SQLITE_BUSY_TIMEOUT_MS = 10_000
WAL_ATTEMPTS = 10

# Rows per executemany call. Each call is one pipelined round trip (asyncpg) or one prepared
# statement run in the driver's thread (aiosqlite); between calls the event loop gets a turn,
# so a million-row batch does not freeze the sources feeding the collector.
WRITE_CHUNK_ROWS = 5_000
# Bound parameters per statement stay under both backends' limits (SQLite 32,766; asyncpg 32,767).
IN_CLAUSE_CHUNK = 10_000

# pg_advisory_xact_lock key: collectors starting together must not race to create the schema.
_MIGRATION_LOCK_KEY = 0x6564756D6F6E  # "edumon"

# Exceptions that mean "the database failed", as opposed to a bug in the caller. asyncpg's
# connect errors (refused, DNS failure, timeouts) arrive as OSError, not wrapped by SQLAlchemy.
_DB_ERRORS = (SQLAlchemyError, OSError, CommandError)


def _redact_text(url: str) -> str:
    """Hide a password in a URL that SQLAlchemy could not parse."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _parse_url(url: str) -> URL:
    """Map a user-friendly database URL to its async-driver form.

    Raises:
        StoreError: the URL cannot be parsed or names a database edumon does not support.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(
            f"storage URL {_redact_text(url)!r} is not a database URL; "
            "use e.g. sqlite:///edumon.db or postgresql://user@host:5432/edumon"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "aiosqlite", "pysqlite"):
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "asyncpg", "psycopg", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        # libpq spells it sslmode=require; asyncpg takes ssl=require.
        if "sslmode" in parsed.query and "ssl" not in parsed.query:
            parsed = parsed.update_query_dict({"ssl": parsed.query["sslmode"]})
            parsed = parsed.difference_update_query(["sslmode"])
        return parsed
    raise StoreError(
        f"storage URL {parsed.render_as_string(hide_password=True)!r}: unsupported database "
        f"{parsed.drivername!r}; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def async_url(url: str) -> str:
    """The async-driver form of a database URL, password included (for Alembic's CLI).

    Raises:
        StoreError: the URL cannot be parsed or names an unsupported database.
    """
    return _parse_url(url).render_as_string(hide_password=False)


def _reason(exc: BaseException, password: str | None) -> str:
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


_SQLITE_TERMINAL_INSERT = (
    "INSERT OR IGNORE INTO terminal_samples (school, terminal, boot_id, seq, at, classroom, "
    "uptime_seconds, link_speed_mbps, cpu_percent, memory_used_bytes, disk_used_bytes) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seconds(value: datetime) -> float:
    return value.timestamp()


def _chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # NORMAL sync is durable across process crashes in WAL mode (see Store.use_wal) and much
    # cheaper than FULL; SQLite leaves foreign keys unenforced unless asked.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _make_parent_directory(database: str) -> None:
    Path(database).resolve().parent.mkdir(parents=True, exist_ok=True)


def _upgrade_to_head(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def open_store(
    url: str | SecretStr, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> Store:
    """Open the database at ``url`` and migrate its schema to the current version.

    Args:
        url: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` or
            ``postgresql://user[:password]@host:5432/database``; the async drivers
            (aiosqlite, asyncpg) are chosen here. A ``SecretStr`` (the configuration's
            ``storage.url``) is unwrapped here and nowhere else.
        timeout_seconds: upper bound on any one store operation.

    Returns:
        An open Store; close it with ``aclose()``.

    Raises:
        StoreError: the database cannot be reached, created or migrated. The message names
            the database with its password hidden.
    """
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    target = _parse_url(url)
    # Named as the user wrote it (minus the password), not in its async-driver form.
    is_sqlite = target.get_backend_name() == "sqlite"
    name = url.strip() if is_sqlite else make_url(url).render_as_string(hide_password=True)
    common: dict[str, Any] = {
        # Sample batches are large and errors must stay readable: no parameters in messages.
        "hide_parameters": True,
        "json_serializer": functools.partial(json.dumps, ensure_ascii=False, default=str),
    }
    if is_sqlite:
        database = target.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if not in_memory:
            try:
                await asyncio.to_thread(_make_parent_directory, database)
            except OSError as exc:
                raise StoreError(
                    f"database {name}: cannot create its directory: {_reason(exc, None)}"
                ) from exc
        if in_memory:
            # One shared connection, or every checkout would see a different empty database.
            common["poolclass"] = StaticPool
        engine = create_async_engine(
            target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **common
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(
            target,
            # A restarted server leaves dead connections in the pool; test each before use.
            pool_pre_ping=True,
            pool_timeout=timeout_seconds,
            connect_args={
                "timeout": CONNECT_TIMEOUT_SECONDS,
                "command_timeout": timeout_seconds,
                "server_settings": {"application_name": "edumon"},
            },
            **common,
        )
    store = Store(engine, name, password=target.password, timeout_seconds=timeout_seconds)
    try:
        await store.connect()
        if is_sqlite:
            await store.use_wal()
        await store.migrate()
    except BaseException:
        await engine.dispose()
        raise
    return store


class Store:
    """Inventory, samples and events in one database; built by ``open_store``.

    Every method that touches the database raises StoreError when the database fails (never
    a driver exception), so a caller can keep its batch and retry later.
    """

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
                f"database {self._name}: {doing} failed: {_reason(exc, self._password)}"
            ) from exc

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
        logger.info("database %s: schema is current", self._name)

    async def sync_inventory(self, config: Config, *, remove_missing: bool = True) -> None:
        """Make the inventory tables match the configuration (idempotent).

        Args:
            config: the validated configuration; SNMP credentials are never stored.
            remove_missing: delete schools, classrooms and switches of this district that the
                configuration no longer lists. Collectors that each hold a shard of one
                district's inventory pass False.

        Raises:
            StoreError: the database failed; nothing was changed.
        """
        district = config.district.code
        school_rows = [
            {
                "code": s.code,
                "district": district,
                "name": s.name,
                "kind": s.kind,
                "uplink_switch": s.uplink.switch,
                "uplink_port": s.uplink.port,
            }
            for s in config.schools.values()
        ]
        room_rows = [
            {
                "id": r.id,
                "school": s.code,
                "name": r.name,
                "switch": r.switch,
                "port": r.port,
                "terminal": r.terminal_id,
            }
            for s in config.schools.values()
            for r in s.classrooms
        ]
        device_rows = [
            {
                "id": sw.id,
                "district": district,
                "school": sw.school,
                "host": sw.host,
                "port": sw.port,
            }
            for sw in config.switches.values()
        ]
        async with self._guard("syncing the inventory"), self._engine.begin() as conn:
            await conn.execute(
                self._upsert(t.districts), [{"code": district, "name": config.district.name}]
            )
            for table, rows in (
                (t.schools, school_rows),
                (t.devices, device_rows),
                (t.classrooms, room_rows),
            ):
                for chunk in _chunks(rows, WRITE_CHUNK_ROWS):
                    await conn.execute(self._upsert(table), list(chunk))
            if remove_missing:
                school_codes = list(config.schools)
                await self._delete_missing(
                    conn,
                    t.classrooms,
                    t.classrooms.c.id,
                    {r.id for s in config.schools.values() for r in s.classrooms},
                    t.classrooms.c.school,
                    school_codes,
                )
                await self._delete_missing(
                    conn,
                    t.devices,
                    t.devices.c.id,
                    set(config.switches),
                    t.devices.c.district,
                    [district],
                )
                await self._delete_missing(
                    conn,
                    t.schools,
                    t.schools.c.code,
                    set(school_codes),
                    t.schools.c.district,
                    [district],
                )
        logger.info(
            "database %s: inventory synced (%d schools, %d classrooms, %d switches)",
            self._name,
            len(school_rows),
            len(room_rows),
            len(device_rows),
        )

    async def _delete_missing(
        self,
        conn: AsyncConnection,
        table: Table,
        key: Any,
        keep: set[str],
        scope: Any,
        scope_values: Sequence[str],
    ) -> None:
        # Read the stored keys and delete by difference in chunks: a NOT IN list of every
        # classroom of a city would exceed the backends' bound-parameter limits.
        stored: set[str] = set()
        for chunk in _chunks(scope_values, IN_CLAUSE_CHUNK):
            result = await conn.execute(select(key).where(scope.in_(chunk)))
            stored.update(result.scalars())
        gone = sorted(stored - keep)
        for chunk in _chunks(gone, IN_CLAUSE_CHUNK):
            stmt: Delete = delete(table).where(key.in_(chunk))
            await conn.execute(stmt)
        if gone:
            logger.info("database %s: removed %d rows from %s", self._name, len(gone), table.name)

    async def write(
        self,
        interface_samples: Sequence[InterfaceSample] = (),
        device_samples: Sequence[DeviceSample] = (),
        events: Sequence[Event] = (),
        terminal_samples: Sequence[TerminalSample] = (),
    ) -> None:
        """Store a batch in one transaction: all of it or none of it.

        Samples already stored (same device, interface and time; terminal heartbeats with the
        same school, terminal, boot id and sequence number) are skipped, so a batch retried
        after an ambiguous failure, or heartbeats replayed from an agent's spool, are not
        duplicated.

        Raises:
            StoreError: the database failed; nothing was stored and the caller may retry the
                same batch later.
        """
        iface_rows = [
            {
                "device_id": s.device_id,
                "interface": s.interface,
                "at": _dt(s.at),
                "oper_status": int(s.oper_status),
                "speed_mbps": s.speed_mbps,
                "in_bps": s.in_bps,
                "out_bps": s.out_bps,
                "in_octets": s.in_octets,
                "out_octets": s.out_octets,
            }
            for s in interface_samples
        ]
        device_rows = [
            {
                "device_id": s.device_id,
                "at": _dt(s.at),
                "reachable": s.reachable,
                "uptime_seconds": s.uptime_seconds,
                "poll_seconds": s.poll_seconds,
            }
            for s in device_samples
        ]
        event_rows = [
            {
                "at": _dt(e.at),
                "kind": str(e.kind),
                "device_id": e.device_id,
                "school": e.school,
                "interface": e.interface,
                "classroom": e.classroom,
                "message": e.message,
                "details": dict(e.details),
            }
            for e in events
        ]
        terminal_rows: list[dict[str, Any]] = []
        terminal_tuples: list[tuple[Any, ...]] = []
        if self._dialect == "sqlite":
            # Heartbeats are the bulk of a county's writes (thousands a second at peak):
            # SQLite gets plain tuples through the driver, skipping SQLAlchemy's per-row
            # parameter processing (half the cost). The text timestamp is the format
            # UtcDateTime stores there (naive UTC, microseconds always written).
            terminal_tuples = [
                (
                    s.school,
                    s.terminal,
                    s.boot_id,
                    s.seq,
                    f"{_dt(s.at).replace(tzinfo=None):%Y-%m-%d %H:%M:%S.%f}",
                    s.classroom,
                    s.uptime_seconds,
                    s.link_speed_mbps,
                    s.cpu_percent,
                    s.memory_used_bytes,
                    s.disk_used_bytes,
                )
                for s in terminal_samples
            ]
        else:
            terminal_rows = [
                {
                    "school": s.school,
                    "terminal": s.terminal,
                    "boot_id": s.boot_id,
                    "seq": s.seq,
                    "at": _dt(s.at),
                    "classroom": s.classroom,
                    "uptime_seconds": s.uptime_seconds,
                    "link_speed_mbps": s.link_speed_mbps,
                    "cpu_percent": s.cpu_percent,
                    "memory_used_bytes": s.memory_used_bytes,
                    "disk_used_bytes": s.disk_used_bytes,
                }
                for s in terminal_samples
            ]
        new_interfaces: dict[tuple[str, str], float] = {}
        for s in interface_samples:
            pair = (s.device_id, s.interface)
            if pair not in self._seen_interfaces:
                new_interfaces[pair] = min(s.at, new_interfaces.get(pair, s.at))
        interface_rows = [
            {"device_id": d, "name": n, "first_seen": _dt(at)}
            for (d, n), at in new_interfaces.items()
        ]
        total = (
            len(iface_rows)
            + len(device_rows)
            + len(event_rows)
            + len(terminal_rows)
            + len(terminal_tuples)
        )
        if total == 0:
            return
        async with self._guard(f"writing {total} rows"), self._engine.begin() as conn:
            for stmt, rows in (
                (self._insert_ignore(t.interface_samples), iface_rows),
                (self._insert_ignore(t.device_samples), device_rows),
                (self._insert_ignore(t.interfaces), interface_rows),
                (self._insert_ignore(t.terminal_samples), terminal_rows),
                (t.events.insert(), event_rows),
            ):
                for chunk in _chunks(rows, WRITE_CHUNK_ROWS):
                    await conn.execute(stmt, list(chunk))
            for tuples in _chunks(terminal_tuples, WRITE_CHUNK_ROWS):
                await conn.exec_driver_sql(_SQLITE_TERMINAL_INSERT, list(tuples))
        # Only after the commit: a failed batch must insert its interfaces when retried.
        self._seen_interfaces.update(new_interfaces)

    async def events(
        self,
        *,
        school: str | None = None,
        kind: EventKind | str | None = None,
        device: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        """Events newest first, filtered.

        Args:
            school: only this school's events.
            kind: only events of this kind.
            device: only events of this switch.
            since: only events at or after this time (Unix seconds).
            until: only events before this time (Unix seconds).
            limit: at most this many events.
            offset: skip this many (newest) events first, for paging.

        Raises:
            ValueError: limit or offset is negative.
            StoreError: the database failed.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        c = t.events.c
        query = select(t.events)
        if school is not None:
            query = query.where(c.school == school)
        if kind is not None:
            query = query.where(c.kind == str(kind))
        if device is not None:
            query = query.where(c.device_id == device)
        if since is not None:
            query = query.where(c.at >= _dt(since))
        if until is not None:
            query = query.where(c.at < _dt(until))
        query = query.order_by(c.at.desc(), c.id.desc()).limit(limit).offset(offset)
        async with self._guard("reading events"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Event(
                at=_seconds(r.at),
                kind=EventKind(r.kind),
                device_id=r.device_id,
                school=r.school,
                interface=r.interface,
                classroom=r.classroom,
                message=r.message,
                details=dict(r.details),
            )
            for r in rows
        ]

    async def interface_history(
        self,
        device_id: str,
        interface: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[InterfaceSample]:
        """One interface's samples in [since, until), oldest first; the newest ``limit`` of them.

        Raises:
            ValueError: limit is negative.
            StoreError: the database failed.
        """
        if limit < 0:
            raise ValueError("limit must not be negative")
        c = t.interface_samples.c
        query = select(t.interface_samples).where(
            c.device_id == device_id, c.interface == interface
        )
        if since is not None:
            query = query.where(c.at >= _dt(since))
        if until is not None:
            query = query.where(c.at < _dt(until))
        query = query.order_by(c.at.desc()).limit(limit)
        async with self._guard("reading interface history"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            InterfaceSample(
                at=_seconds(r.at),
                device_id=r.device_id,
                interface=r.interface,
                oper_status=OperStatus(r.oper_status),
                speed_mbps=r.speed_mbps,
                in_bps=r.in_bps,
                out_bps=r.out_bps,
                in_octets=r.in_octets,
                out_octets=r.out_octets,
            )
            for r in reversed(rows)
        ]

    async def device_history(
        self,
        device_id: str,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[DeviceSample]:
        """One switch's samples in [since, until), oldest first; the newest ``limit`` of them.

        Raises:
            ValueError: limit is negative.
            StoreError: the database failed.
        """
        if limit < 0:
            raise ValueError("limit must not be negative")
        c = t.device_samples.c
        query = select(t.device_samples).where(c.device_id == device_id)
        if since is not None:
            query = query.where(c.at >= _dt(since))
        if until is not None:
            query = query.where(c.at < _dt(until))
        query = query.order_by(c.at.desc()).limit(limit)
        async with self._guard("reading device history"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DeviceSample(
                at=_seconds(r.at),
                device_id=r.device_id,
                reachable=bool(r.reachable),
                uptime_seconds=r.uptime_seconds,
                poll_seconds=r.poll_seconds,
            )
            for r in reversed(rows)
        ]

    async def terminal_history(
        self,
        classroom: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
        *,
        school: str | None = None,
        terminal: str | None = None,
    ) -> list[TerminalSample]:
        """One classroom's heartbeats in [since, until), oldest first; the newest ``limit``.

        Name either the classroom, or the school and the terminal id (terminal ids are unique
        within a school only); the latter follows a terminal that moved between classrooms.

        Raises:
            ValueError: limit is negative, or not exactly one of classroom and
                (school, terminal) was given.
            StoreError: the database failed.
        """
        if limit < 0:
            raise ValueError("limit must not be negative")
        by_terminal = school is not None or terminal is not None
        if (classroom is not None) == by_terminal or (by_terminal and None in (school, terminal)):
            raise ValueError("give either a classroom, or both a school and a terminal")
        c = t.terminal_samples.c
        query = select(t.terminal_samples)
        if classroom is not None:
            query = query.where(c.classroom == classroom)
        else:
            query = query.where(c.school == school, c.terminal == terminal)
        if since is not None:
            query = query.where(c.at >= _dt(since))
        if until is not None:
            query = query.where(c.at < _dt(until))
        # Heartbeats replayed from a spool can share a receipt time; seq orders them.
        query = query.order_by(c.at.desc(), c.seq.desc()).limit(limit)
        async with self._guard("reading terminal history"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            TerminalSample(
                at=_seconds(r.at),
                school=r.school,
                terminal=r.terminal,
                classroom=r.classroom,
                boot_id=r.boot_id,
                seq=r.seq,
                uptime_seconds=r.uptime_seconds,
                link_speed_mbps=r.link_speed_mbps,
                cpu_percent=r.cpu_percent,
                memory_used_bytes=r.memory_used_bytes,
                disk_used_bytes=r.disk_used_bytes,
            )
            for r in reversed(rows)
        ]

    def _epoch_microseconds(self) -> ColumnElement[int]:
        """``terminal_samples.at`` as integer Unix microseconds, computed by the database.

        Availability reads a day of a county's heartbeats (~230k rows) at once; plain integers
        skip building a datetime per row, and dividing by 10**6 gives exactly the float that
        ``datetime.timestamp()`` would.
        """
        at = t.terminal_samples.c.at
        if self._dialect == "postgresql":
            # extract() returns an exact numeric (PostgreSQL >= 14) or a float8 with
            # microsecond precision for this century; round() absorbs the latter's error.
            return cast(func.round(extract("epoch", at) * 1_000_000), BigInteger)
        # SQLite stores fixed-width text, 'YYYY-MM-DD HH:MM:SS.ffffff' (see UtcDateTime).
        # The fraction is cut off before strftime, which rounds it to milliseconds and so
        # would turn :59.999999 into the next second.
        seconds = cast(func.strftime("%s", func.substr(at, 1, 19)), BigInteger)
        return seconds * 1_000_000 + cast(func.substr(at, 21, 6), BigInteger)

    async def terminal_seen_intervals(
        self,
        school: str | None = None,
        *,
        since: float,
        until: float,
        classroom: str | None = None,
    ) -> dict[str, list[float]]:
        """When each classroom's heartbeats arrived in [since, until), for availability.

        A terminal was online from a heartbeat until the next one if they are closer than the
        offline timeout. To know the state at ``since``, start the window one timeout earlier.

        Args:
            school: only this school's classrooms.
            since: window start (Unix seconds), inclusive.
            until: window end (Unix seconds), exclusive.
            classroom: only this classroom.

        Returns:
            Receipt times (Unix seconds) in ascending order, keyed by classroom id; classrooms
            without a heartbeat in the window are absent.

        Raises:
            ValueError: until is before since.
            StoreError: the database failed.
        """
        if until < since:
            raise ValueError("until must not be before since")
        c = t.terminal_samples.c
        micros = self._epoch_microseconds().label("micros")
        query = select(c.classroom, micros).where(c.at >= _dt(since), c.at < _dt(until))
        if school is not None:
            query = query.where(c.school == school)
        if classroom is not None:
            query = query.where(c.classroom == classroom)
        # Ordered by time alone, so each of the three (…, at) indexes yields rows without a
        # sort; grouping by classroom keeps that order.
        query = query.order_by(c.at)
        seen: dict[str, list[float]] = {}
        async with self._guard("reading terminal heartbeats"), self._engine.connect() as conn:
            result = await conn.execute(query)
            for room, us in result:
                times = seen.get(room)
                if times is None:
                    times = seen[room] = []
                times.append(us / 1_000_000)
        return seen

    async def upsert_availability(self, rows: Sequence[ClassroomAvailability]) -> None:
        """Insert daily availability rows, replacing those of the same day and classroom.

        Raises:
            StoreError: the database failed; nothing was changed.
        """
        values = [
            {
                "day": r.day,
                "classroom": r.classroom,
                "school": r.school,
                "scheduled_minutes": r.scheduled_minutes,
                "online_minutes": r.online_minutes,
                "scheduled_lessons": r.scheduled_lessons,
                "lessons_with_terminal_on": r.lessons_with_terminal_on,
                "switched_on": r.switched_on,
                "computed_at": _dt(r.computed_at),
            }
            for r in rows
        ]
        if not values:
            return
        stmt = self._upsert(t.classroom_availability_daily)
        async with (
            self._guard(f"writing {len(values)} availability rows"),
            self._engine.begin() as conn,
        ):
            for chunk in _chunks(values, WRITE_CHUNK_ROWS):
                await conn.execute(stmt, list(chunk))

    async def availability(
        self,
        since_day: date,
        until_day: date,
        school: str | None = None,
        classroom: str | None = None,
    ) -> list[ClassroomAvailability]:
        """Daily availability for days in [since_day, until_day), ordered by day and classroom.

        Raises:
            StoreError: the database failed.
        """
        c = t.classroom_availability_daily.c
        query = select(t.classroom_availability_daily).where(c.day >= since_day, c.day < until_day)
        if school is not None:
            query = query.where(c.school == school)
        if classroom is not None:
            query = query.where(c.classroom == classroom)
        query = query.order_by(c.day, c.classroom)
        async with self._guard("reading availability"), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ClassroomAvailability(
                day=r.day,
                school=r.school,
                classroom=r.classroom,
                scheduled_minutes=r.scheduled_minutes,
                online_minutes=r.online_minutes,
                scheduled_lessons=r.scheduled_lessons,
                lessons_with_terminal_on=r.lessons_with_terminal_on,
                switched_on=bool(r.switched_on),
                computed_at=_seconds(r.computed_at),
            )
            for r in rows
        ]

    async def prune(self, now: float, retention_seconds: float) -> int:
        """Delete interface, device and terminal samples older than ``now - retention_seconds``.

        Events, daily availability and inventory are never pruned.

        Returns:
            The number of samples deleted.

        Raises:
            ValueError: retention_seconds is not positive.
            StoreError: the database failed; nothing was deleted.
        """
        if retention_seconds <= 0:
            raise ValueError("retention_seconds must be positive")
        cutoff = _dt(now - retention_seconds)
        deleted = 0
        async with self._guard("pruning old samples"), self._engine.begin() as conn:
            for table in (t.interface_samples, t.device_samples, t.terminal_samples):
                result = await conn.execute(delete(table).where(table.c.at < cutoff))
                deleted += max(result.rowcount, 0)
        if deleted:
            logger.info("database %s: pruned %d samples before %s", self._name, deleted, cutoff)
        return deleted

    async def ping(self) -> bool:
        """Whether the database answers a trivial query within a few seconds (never raises)."""
        try:
            async with asyncio.timeout(PING_TIMEOUT_SECONDS), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (*_DB_ERRORS, TimeoutError) as exc:
            logger.warning("database %s: ping failed: %s", self._name, _reason(exc, self._password))
            return False
        return True

    async def aclose(self) -> None:
        """Close every pooled connection; the Store is unusable afterwards."""
        await self._engine.dispose()
