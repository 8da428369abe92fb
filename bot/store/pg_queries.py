"""The statements the PostgreSQL store's methods share, each run inside the
caller's transaction on the caller's connection (bot/store/postgres.py).

Entries are stored once and referred to by digest; whatever drops deliveries
collects the entries nobody refers to any more (``collect``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from bot.models import Chat, Entry
from bot.store import codec
from bot.store.pg_rows import notice_to_json

#: "still subscribed and active": the condition on a chat id ``c`` that a
#: delivery of feed ``$feed`` is queued for, in record_polls.
RECIPIENT = (
    "EXISTS (SELECT 1 FROM subscriptions s WHERE s.chat_id = c AND s.feed_url = $1)"
    " AND NOT EXISTS (SELECT 1 FROM chats ch WHERE ch.id = c AND NOT ch.active)"
)


async def move_feed(conn: Any, old: str, new: str) -> None:
    """Move the feed, its seen keys, subscriptions and deliveries from
    ``old`` to ``new``, merging with what ``new`` already has."""
    there = await conn.fetchrow("SELECT state FROM feeds WHERE url = $1 FOR UPDATE", new)
    if there is None:
        await conn.execute("UPDATE feeds SET url = $2 WHERE url = $1", old, new)
    else:
        await conn.execute("DELETE FROM feeds WHERE url = $1", old)
    await conn.execute(
        """INSERT INTO seen (feed_url, key, seen_at)
        SELECT $2, key, seen_at FROM seen WHERE feed_url = $1
        ON CONFLICT (feed_url, key)
        DO UPDATE SET seen_at = greatest(seen.seen_at, excluded.seen_at)""",
        old,
        new,
    )
    await conn.execute("DELETE FROM seen WHERE feed_url = $1", old)
    await conn.execute(
        """UPDATE subscriptions s SET feed_url = $2 WHERE s.feed_url = $1
        AND NOT EXISTS (SELECT 1 FROM subscriptions t
                        WHERE t.chat_id = s.chat_id AND t.feed_url = $2)""",
        old,
        new,
    )
    await conn.execute("DELETE FROM subscriptions WHERE feed_url = $1", old)
    await conn.execute("UPDATE outbox SET feed_url = $2 WHERE feed_url = $1", old, new)
    await drop_duplicates(conn, "feed_url = $1", new)


async def close_quietly(conn: Any) -> None:
    try:
        await conn.close(timeout=2)
    except Exception:  # a dead connection cannot be closed politely
        conn.terminate()


async def save_chat(conn: Any, chat: Chat, *, active: bool) -> None:
    await conn.execute(
        """INSERT INTO chats (id, kind, title, username, active) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, title = excluded.title,
            username = excluded.username, active = excluded.active""",
        chat.id,
        str(chat.kind),
        chat.title,
        chat.username,
        active,
    )


async def mark_seen(conn: Any, url: str, keys: Iterable[str], now: float) -> None:
    await conn.execute(
        """INSERT INTO seen (feed_url, key, seen_at)
        SELECT $1, k, $3 FROM unnest($2::text[]) AS k
        ON CONFLICT (feed_url, key) DO UPDATE SET seen_at = excluded.seen_at""",
        url,
        list(dict.fromkeys(keys)),
        now,
    )


async def queue(
    conn: Any,
    feed_url: str,
    entry: Entry | None,
    notice: Any,
    chat_ids: Iterable[int],
    now: float,
    condition: str | None,
) -> list[tuple[int, int]]:
    """Queue ``entry`` (or ``notice``) for ``chat_ids`` in that order, those
    meeting ``condition`` (SQL on chat id ``c``); returns (chat, seq) pairs."""
    chats = list(dict.fromkeys(chat_ids))
    if not chats:
        return []
    digest = None
    if entry is not None:
        digest = codec.entry_digest(entry)
        # DO UPDATE, not DO NOTHING: it locks the row, so a transaction
        # collecting it as garbage waits for this one (see collect).
        await conn.execute(
            """INSERT INTO entries (digest, body) VALUES ($1, $2)
            ON CONFLICT (digest) DO UPDATE SET digest = excluded.digest""",
            digest,
            codec.entry_to_dict(entry),
        )
    where = f"WHERE {condition}" if condition else ""
    rows = await conn.fetch(
        f"""INSERT INTO outbox (chat_id, feed_url, entry_digest, entry_id, notice, created)
        SELECT c, $1, $2, $3, $4, $5 FROM unnest($6::bigint[]) WITH ORDINALITY AS t(c, i)
        {where} ORDER BY i
        RETURNING chat_id, seq""",
        feed_url,
        digest,
        None if entry is None else entry.id,
        None if notice is None else notice_to_json(notice),
        now,
        chats,
    )
    return sorted(((r["chat_id"], r["seq"]) for r in rows), key=lambda p: p[1])


async def drop_deliveries(conn: Any, where: str, *args: Any) -> None:
    rows = await conn.fetch(f"DELETE FROM outbox WHERE {where} RETURNING entry_digest", *args)
    await collect(conn, {r["entry_digest"] for r in rows if r["entry_digest"]})


async def drop_duplicates(conn: Any, where: str, *args: Any) -> None:
    """After a move: of deliveries with the same chat, feed and entry id, keep
    the earliest."""
    rows = await conn.fetch(
        f"""DELETE FROM outbox o USING outbox k
        WHERE o.{where} AND o.entry_id IS NOT NULL AND k.chat_id = o.chat_id
          AND k.feed_url = o.feed_url AND k.entry_id = o.entry_id AND k.seq < o.seq
        RETURNING o.entry_digest""",
        *args,
    )
    await collect(conn, {r["entry_digest"] for r in rows if r["entry_digest"]})


async def collect(conn: Any, digests: set[str]) -> None:
    """Delete the entries among ``digests`` that no delivery refers to."""
    if not digests:
        return
    try:
        async with conn.transaction():  # a savepoint
            await conn.execute(
                """DELETE FROM entries e WHERE e.digest = ANY($1::text[])
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.entry_digest = e.digest)""",
                list(digests),
            )
    except asyncpg.ForeignKeyViolationError:
        # Another transaction queued one of them meanwhile: it is not garbage.
        pass
