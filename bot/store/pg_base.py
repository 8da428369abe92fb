"""The PostgreSQL store's connections: the pool, its transactions, the
migrations at open, and the one connection that holds the sender lock."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from bot.store.base import Store, StoreError
from bot.store.pg_queries import (
    close_quietly,
)
from bot.store.pg_schema import LOCK_SENDER, LOCK_SPACE, migrate, one_line, password_of, redact

log = logging.getLogger("bot.store.postgres")

_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class PgBase(Store):
    """Connections and lifecycle; the methods of the work are in the subclasses."""

    """:class:`Store` on the PostgreSQL database at ``url``."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool: Any = None
        self._sender: Any = None  # the connection holding the sender lock
        self._secret = password_of(url)

    def _error(self, exc: BaseException) -> StoreError:
        return StoreError(f"PostgreSQL {redact(self.url)}: {one_line(exc, self._secret)}")

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        if self._pool is None:
            raise StoreError(f"PostgreSQL {redact(self.url)}: the store is not open")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _ERRORS as exc:
            raise self._error(exc) from None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    # -- lifecycle -----------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                init=_init_connection,
                timeout=10,
            )
        except (*_ERRORS, ValueError) as exc:
            raise self._error(exc) from None
        try:
            async with self._conn() as conn:
                await migrate(conn)
        except RuntimeError as exc:
            await self.close()
            raise self._error(exc) from None
        except StoreError:
            await self.close()
            raise

    async def migrate_to(self, version: int | None = None) -> int:
        """Apply the migrations up to ``version`` (the latest by default)."""
        async with self._conn() as conn:
            return await migrate(conn, version)

    async def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            await close_quietly(sender)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def hold_sender(self, owner: str) -> bool:
        if self._pool is None:
            return False
        conn = self._sender
        if conn is not None:
            try:
                # The lock is held as long as this session lives: check that it does.
                await conn.fetchval("SELECT 1", timeout=5)
                return True
            except (*_ERRORS, asyncpg.exceptions.ConnectionDoesNotExistError):
                log.warning("the sender's database connection was lost; the role with it")
                self._sender = None
                await close_quietly(conn)
                return False
        try:
            conn = await asyncpg.connect(
                self.url,
                timeout=10,
                server_settings={"application_name": f"feedbot sender {owner}"[:63]},
            )
        except (*_ERRORS, ValueError) as exc:
            log.warning("cannot reach the database for the sender role: %s", self._error(exc))
            return False
        try:
            got = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", LOCK_SPACE, LOCK_SENDER
            )
        except _ERRORS as exc:
            log.warning("cannot take the sender role: %s", self._error(exc))
            got = False
        if got:
            self._sender = conn
            return True
        await close_quietly(conn)
        return False
