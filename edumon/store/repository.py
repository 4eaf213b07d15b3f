"""The store: inventory, samples and events in SQLite or PostgreSQL (SQLAlchemy 2, async)."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool

from edumon.errors import StoreError
from edumon.store.base import (
    DEFAULT_TIMEOUT_SECONDS,
    MIGRATIONS_DIR,
    drop_spoiled_sqlite_connections,
    no_mmap,
    reason,
)
from edumon.store.reads import StoreReads
from edumon.store.reports import StoreReports
from edumon.store.writes import StoreWrites

__all__ = ["MIGRATIONS_DIR", "Store", "async_url", "open_store"]

CONNECT_TIMEOUT_SECONDS = 10.0
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_VFS = "unix-excl"
"""SQLite's VFS for a database file: one process holds it, the WAL index lives in that
process's heap, never in a mapped ``-shm`` file (docs/storage.md, "SQLite and a failing disk")."""


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
    no_mmap(dbapi_connection, _record)


def _make_parent_directory(database: str) -> Path:
    """The database file's absolute path, its directory created."""
    path = Path(database).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _held_exclusively(target: URL, path: Path) -> URL:
    """A SQLite file's URL opened through the ``unix-excl`` VFS (``SQLITE_VFS``).

    In WAL mode SQLite otherwise maps the ``-shm`` file into memory; when that file becomes
    unwritable (``chattr +i``), is truncated, or its disk fails, the next touch of the mapping
    is a SIGBUS that kills the daemon with everything it held. Through ``unix-excl`` the
    process takes the database for itself and keeps the WAL index in its heap: the API's
    readers are connections of the same process and still read beside the writer; another
    process (a second daemon, ``edumon report`` on the same file) is refused with "database is
    locked" instead.
    """
    query = dict(target.query)
    query.setdefault("vfs", SQLITE_VFS)
    database = target.database or ""
    if "uri" not in query:
        query["uri"] = "true"
        # A URI filename: the absolute path, percent-encoded ("?" and "#" are its syntax).
        database = "file:" + quote(str(path))
    return target.set(database=database, query=query)


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
    watched: Path | None = None
    if is_sqlite:
        database = target.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if in_memory:
            # One shared connection, or every checkout would see a different empty database.
            common["poolclass"] = StaticPool
        else:
            try:
                path = await asyncio.to_thread(_make_parent_directory, database)
            except OSError as exc:
                raise StoreError(
                    f"database {name}: cannot create its directory: {reason(exc, None)}"
                ) from exc
            if "uri" not in target.query:  # a plain path (a URI filename is the user's own)
                watched = path
            target = _held_exclusively(target, path)
        engine = create_async_engine(
            target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **common
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", drop_spoiled_sqlite_connections)
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
        if watched is not None:
            store.watch_file(watched)
    except StoreError as exc:
        await engine.dispose()
        if is_sqlite and "database is locked" in str(exc):
            raise StoreError(
                f"{exc}: 另一个进程（正在运行的 edumon？）独占着这个 SQLite 数据库；请先停止它，"
                "或改用 API（如 GET /api/v1/reports/monthly）/ another process (a running "
                "edumon?) holds this SQLite database for itself (docs/storage.md); stop it "
                "first, or ask its API (e.g. GET /api/v1/reports/monthly)"
            ) from exc
        raise
    except BaseException:
        await engine.dispose()
        raise
    return store


class Store(StoreWrites, StoreReads, StoreReports):
    """Inventory, samples and events in one database; built by ``open_store``.

    Its writes (``edumon.store.writes``), reads (``reads``) and report queries (``reports``)
    share one engine and the core in ``edumon.store.base``.

    Every method that touches the database raises StoreError when the database fails (never
    a driver exception), so a caller can keep its batch and retry later.
    """
