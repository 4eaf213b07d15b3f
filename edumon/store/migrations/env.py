"""Alembic environment: migrates the connection open_store() hands over, or a URL from the CLI."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from edumon.store.repository import async_url
from edumon.store.tables import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def _cli_url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("EDUMON_DATABASE_URL")
        or "sqlite:///scratch.db"
    )


async def _run_from_url(url: str) -> None:
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def main() -> None:
    """Migrate: open_store() passes its connection in ``config.attributes``; the CLI a URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    elif context.is_offline_mode():
        context.configure(
            url=async_url(_cli_url()),
            target_metadata=metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(_run_from_url(_cli_url()))


main()
