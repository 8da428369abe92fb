"""The PostgreSQL schema: versioned migrations, and what keeps secrets out of errors.

Migrations are the files ``bot/store/migrations/NNNN_name.sql`` (package
data), applied in order of NNNN. ``migrate`` applies the missing ones in one
transaction that first takes a transaction-level advisory lock, so several
processes starting at once queue up behind the first instead of racing; each
applied version is a row of ``schema_version``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: Advisory lock keys (two-int form, so they cannot clash with an
#: application's one-bigint keys): 0x66656564 is "feed".
LOCK_SPACE = 0x66656564
LOCK_MIGRATE = 1
LOCK_SENDER = 2

_NAME = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for item in resources.files("bot.store.migrations").iterdir():
        m = _NAME.fullmatch(item.name)
        if m is not None:
            found.append(Migration(int(m[1]), item.name, item.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n: {versions}")
    return found


LATEST = len(migrations())


async def migrate(conn: Any, upto: int | None = None) -> int:
    """Bring the database to version ``upto`` (default: the latest); returns
    the version reached. One transaction, under the migration lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_SPACE, LOCK_MIGRATE)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        target = LATEST if upto is None else upto
        if current > LATEST:
            raise RuntimeError(
                f"the database is at schema version {current}, newer than this "
                f"feedbot knows ({LATEST}): upgrade feedbot"
            )
        for mig in migrations():
            if current < mig.version <= target:
                await conn.execute(mig.sql)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", mig.version)
                current = mig.version
        return int(current)


# -- secrets -----------------------------------------------------------------
def password_of(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable database URL>"
    if not password:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def one_line(exc: BaseException, secret: str | None) -> str:
    """The first line of ``exc``'s message, the secret blanked out."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    if secret:
        line = line.replace(secret, "***")
    return line
