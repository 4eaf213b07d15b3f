"""Persistence: SQLAlchemy tables, migrations and the repository the collector and API use."""

from edumon.store.protocol import StoreProtocol, StoreReader
from edumon.store.repository import Store, async_url, open_store

__all__ = ["Store", "StoreProtocol", "StoreReader", "async_url", "open_store"]
