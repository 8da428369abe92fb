"""The PostgreSQL store's subscriptions and chats: what the commands change."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.models import Chat, ChatKind, Entry, Feed, Subscription
from bot.store import codec
from bot.store.pg_outbox import PgOutbox
from bot.store.pg_queries import (
    drop_deliveries,
    drop_duplicates,
    mark_seen,
    queue,
    save_chat,
)
from bot.store.pg_rows import (
    SUB_COLS,
    chat_from_row,
    feed_state,
    status_of,
    sub_from_row,
)

log = logging.getLogger("bot.store.postgres")


class PgCommands(PgOutbox):
    # -- subscriptions and chats ---------------------------------------------
    async def subscribe(
        self,
        chat: Chat,
        sub: Subscription,
        *,
        new_feed: Feed | None = None,
        seen: Sequence[str] = (),
        sample: Entry | None = None,
        now: float = 0.0,
    ) -> Subscription | None:
        async with self._tx() as conn:
            seq = await conn.fetchval(
                """INSERT INTO subscriptions (chat_id, feed_url, created, style)
                VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING seq""",
                chat.id,
                sub.feed_url,
                sub.created,
                codec.style_to_dict(sub.style),
            )
            if seq is None:
                return None
            await save_chat(conn, chat, active=True)
            if new_feed is not None:
                await conn.execute(
                    """INSERT INTO feeds (url, next_poll, status, state) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (url) DO UPDATE SET next_poll = excluded.next_poll,
                        status = excluded.status, state = excluded.state,
                        lease_owner = NULL, lease_until = NULL""",
                    sub.feed_url,
                    new_feed.next_poll,
                    status_of(new_feed),
                    feed_state(new_feed),
                )
                await conn.execute("DELETE FROM seen WHERE feed_url = $1", sub.feed_url)
                if seen:
                    await mark_seen(conn, sub.feed_url, seen, now)
            if sample is not None:
                await queue(conn, sub.feed_url, sample, None, (chat.id,), now, None)
        return Subscription(chat.id, sub.feed_url, sub.created, sub.style, int(seq))

    async def unsubscribe(self, chat_id: int, feed_url: str) -> bool:
        async with self._tx() as conn:
            # The feed row first: a concurrent subscribe to it waits for us.
            await conn.execute("SELECT 1 FROM feeds WHERE url = $1 FOR UPDATE", feed_url)
            gone = await conn.fetchval(
                "DELETE FROM subscriptions WHERE chat_id = $1 AND feed_url = $2 RETURNING seq",
                chat_id,
                feed_url,
            )
            if gone is None:
                return False
            await drop_deliveries(conn, "chat_id = $1 AND feed_url = $2", chat_id, feed_url)
            if not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE feed_url = $1)", feed_url
            ):
                await conn.execute("DELETE FROM feeds WHERE url = $1", feed_url)
                await conn.execute("DELETE FROM seen WHERE feed_url = $1", feed_url)
            return True

    async def update_subscription(self, sub: Subscription) -> bool:
        async with self._tx() as conn:
            done = await conn.fetchval(
                """UPDATE subscriptions SET style = $3, created = $4
                WHERE chat_id = $1 AND feed_url = $2 RETURNING seq""",
                sub.chat_id,
                sub.feed_url,
                codec.style_to_dict(sub.style),
                sub.created,
            )
        return done is not None

    async def get_subscription(self, chat_id: int, feed_url: str) -> Subscription | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {SUB_COLS} FROM subscriptions WHERE chat_id = $1 AND feed_url = $2",
                chat_id,
                feed_url,
            )
        return None if row is None else sub_from_row(row)

    async def chat_subscriptions(self, chat_id: int) -> list[Subscription]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {SUB_COLS} FROM subscriptions WHERE chat_id = $1 ORDER BY seq", chat_id
            )
        return [sub_from_row(r) for r in rows]

    async def active_subscribers(self, feed_url: str) -> list[Subscription]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"""SELECT {", ".join("s." + c.strip() for c in SUB_COLS.split(","))}
                FROM subscriptions s LEFT JOIN chats c ON c.id = s.chat_id
                WHERE s.feed_url = $1 AND coalesce(c.active, true) ORDER BY s.seq""",
                feed_url,
            )
        return [sub_from_row(r) for r in rows]

    async def get_chat(self, chat_id: int) -> Chat | None:
        async with self._conn() as conn:
            row = await conn.fetchrow("SELECT * FROM chats WHERE id = $1", chat_id)
        return None if row is None else chat_from_row(row)

    async def save_chat(self, chat: Chat) -> None:
        async with self._tx() as conn:
            await save_chat(conn, chat, active=chat.active)

    async def pause_chat(self, chat_id: int) -> bool:
        async with self._tx() as conn:
            paused = await conn.fetchval(
                "UPDATE chats SET active = false WHERE id = $1 AND active RETURNING id", chat_id
            )
            await drop_deliveries(conn, "chat_id = $1", chat_id)
        return paused is not None

    async def resume_chat(self, chat: Chat) -> bool:
        async with self._tx() as conn:
            before = await conn.fetchval(
                "SELECT active FROM chats WHERE id = $1 FOR UPDATE", chat.id
            )
            await save_chat(conn, chat, active=True)
            if before is not False:
                return False
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE chat_id = $1)", chat.id
                )
            )

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        if old_id == new_id:
            return
        async with self._tx() as conn:
            old = await conn.fetchrow("SELECT * FROM chats WHERE id = $1 FOR UPDATE", old_id)
            if old is not None:
                await conn.execute("DELETE FROM chats WHERE id = $1", old_id)
                chat = chat_from_row(old)
                chat.id = new_id
                if chat.kind == ChatKind.GROUP:
                    chat.kind = ChatKind.SUPERGROUP
                await conn.execute(
                    """INSERT INTO chats (id, kind, title, username, active)
                    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING""",
                    chat.id,
                    str(chat.kind),
                    chat.title,
                    chat.username,
                    chat.active,
                )
            await conn.execute(
                """UPDATE subscriptions s SET chat_id = $2 WHERE s.chat_id = $1
                AND NOT EXISTS (SELECT 1 FROM subscriptions t
                                WHERE t.chat_id = $2 AND t.feed_url = s.feed_url)""",
                old_id,
                new_id,
            )
            await conn.execute("DELETE FROM subscriptions WHERE chat_id = $1", old_id)
            await conn.execute("UPDATE outbox SET chat_id = $2 WHERE chat_id = $1", old_id, new_id)
            await drop_duplicates(conn, "chat_id = $1", new_id)
