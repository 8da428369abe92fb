"""Persistence: the :class:`Store` interface and its backends."""

from __future__ import annotations

import os

from bot.store.base import Store
from bot.store.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "open_store"]


def open_store(path: str) -> Store:
    """Open (creating if needed) the store at ``path`` and its parent directory."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return SqliteStore(path)
