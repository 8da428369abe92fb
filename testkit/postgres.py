"""A fresh PostgreSQL database per test, on the machine's real server.

The server is the one on loopback (127.0.0.1:5432, trust auth, user
postgres), or ``FEEDBOT_TEST_PG`` (a server URL without a database name).
Each test gets a database of its own, created here and dropped after: no
mock of PostgreSQL anywhere. Where no server answers, ``unavailable()`` says
why, so the tests skip with that reason (and CI checks the server first, so
it never skips them silently).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

SERVER = os.environ.get("FEEDBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


async def unavailable() -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed"
    try:
        conn = await asyncpg.connect(f"{SERVER}/postgres", timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"no PostgreSQL server at {SERVER}: {exc}"
    await conn.close()
    return None


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    import asyncpg

    name = f"feedbot_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{SERVER}/postgres", timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{SERVER}/{name}"
    finally:
        admin = await asyncpg.connect(f"{SERVER}/postgres", timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
