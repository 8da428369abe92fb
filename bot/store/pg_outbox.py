"""The PostgreSQL store's outbox and statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.models import ChatKind, Delivery, Entry, Notice
from bot.store.base import ChatCount, OutboxStats, StoreStats
from bot.store.pg_base import PgBase
from bot.store.pg_queries import (
    drop_deliveries,
    queue,
)
from bot.store.pg_rows import (
    DELIVERY_COLS,
    DELIVERY_FROM,
    delivery_from_row,
)

log = logging.getLogger("bot.store.postgres")


class PgOutbox(PgBase):
    # -- the outbox ----------------------------------------------------------
    async def outbox_chats(self, now: float, limit: int) -> list[int]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT chat_id FROM (
                    SELECT DISTINCT ON (chat_id) chat_id, seq, not_before
                    FROM outbox ORDER BY chat_id, seq) AS head
                WHERE not_before <= $1 ORDER BY seq LIMIT $2""",
                now,
                limit,
            )
        return [r["chat_id"] for r in rows]

    async def next_delivery(self, chat_id: int) -> Delivery | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {DELIVERY_COLS} FROM {DELIVERY_FROM}"
                " WHERE o.chat_id = $1 ORDER BY o.seq LIMIT 1",
                chat_id,
            )
        return None if row is None else delivery_from_row(row)

    async def next_delivery_at(self) -> float | None:
        async with self._conn() as conn:
            value = await conn.fetchval(
                """SELECT min(not_before) FROM (
                    SELECT DISTINCT ON (chat_id) not_before FROM outbox
                    ORDER BY chat_id, seq) AS head"""
            )
        return None if value is None else float(value)

    async def complete_delivery(self, delivery: Delivery) -> None:
        async with self._tx() as conn:
            await drop_deliveries(conn, "seq = $1", delivery.seq)

    async def reschedule_delivery(self, delivery: Delivery) -> None:
        async with self._tx() as conn:
            await conn.execute(
                """UPDATE outbox SET not_before = $2, attempts = $3, sent_parts = $4,
                    chat_id = $5 WHERE seq = $1""",
                delivery.seq,
                delivery.not_before,
                delivery.attempts,
                delivery.sent_parts,
                delivery.chat_id,
            )

    async def enqueue(
        self, feed_url: str, entry: Entry, chat_ids: Sequence[int], now: float
    ) -> list[Delivery]:
        async with self._tx() as conn:
            seqs = await queue(conn, feed_url, entry, None, chat_ids, now, None)
        return [Delivery(seq, chat, feed_url, entry) for chat, seq in seqs]

    async def pending(self) -> list[Delivery]:
        async with self._conn() as conn:
            rows = await conn.fetch(f"SELECT {DELIVERY_COLS} FROM {DELIVERY_FROM} ORDER BY o.seq")
        return [delivery_from_row(r) for r in rows]

    async def notify_private_chats(self, notice: Notice, now: float) -> int:
        async with self._tx() as conn:
            ids = await conn.fetch(
                "SELECT id FROM chats WHERE kind = $1 AND active ORDER BY id",
                str(ChatKind.PRIVATE),
            )
            seqs = await queue(conn, "", None, notice, [r["id"] for r in ids], now, None)
        return len(seqs)

    async def pending_notices(self, code: str) -> int:
        async with self._conn() as conn:
            count = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE notice->>'code' = $1", code
            )
        return int(count)

    # -- operating -----------------------------------------------------------
    async def stats(self) -> StoreStats:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """SELECT
                    (SELECT count(*) FROM chats) AS chats,
                    (SELECT count(*) FROM chats WHERE active) AS active_chats,
                    (SELECT count(*) FROM feeds) AS feeds,
                    (SELECT count(*) FROM feeds WHERE status = 'gone'
                        OR coalesce((state->>'error_count')::int, 0) > 0) AS failing,
                    (SELECT count(*) FROM subscriptions) AS subscriptions,
                    (SELECT count(*) FROM outbox) AS depth,
                    (SELECT min(created) FROM outbox) AS oldest"""
            )
            kinds = await conn.fetch(
                """SELECT kind, count(*) FILTER (WHERE active) AS active,
                    count(*) FILTER (WHERE NOT active) AS paused
                FROM chats GROUP BY kind ORDER BY kind"""
            )
        return StoreStats(
            chats=row["chats"],
            active_chats=row["active_chats"],
            feeds=row["feeds"],
            failing_feeds=row["failing"],
            subscriptions=row["subscriptions"],
            outbox=OutboxStats(row["depth"], row["oldest"]),
            by_kind=tuple(ChatCount(r["kind"], r["active"], r["paused"]) for r in kinds),
        )
