"""Persistence: the :class:`Store` interface and its backends."""

from __future__ import annotations

from bot.config import StoreConfig
from bot.store.base import OutboxStats, Store, StoreError, StoreStats

__all__ = ["OutboxStats", "Store", "StoreError", "StoreStats", "open_store"]


def open_store(config: StoreConfig) -> Store:
    """The backend ``config`` names, not yet opened (``await store.open()``):
    PostgreSQL when ``config.url`` is set, else the embedded file at
    ``config.path`` (its directory created by ``open``)."""
    if config.url:
        from bot.store.postgres import PostgresStore

        return PostgresStore(config.url)
    from bot.store.sqlite import SqliteStore

    return SqliteStore(config.path)
