"""The PostgreSQL backend: the store that several feedbot processes may share.

The driver is **asyncpg**, not psycopg 3: it speaks PostgreSQL's binary
protocol directly (no libpq), prepares and caches every statement by itself,
decodes rows several times faster than psycopg's async mode in asyncpg's
published benchmarks, and has been the mature asyncio driver for years; its pool is
built in. What psycopg 3 offers beyond it (sync and async from one API,
server-side cursors for huge reads) feedbot does not need.

Tables (bot/store/migrations/): chats, feeds (``next_poll``, ``status`` and
the lease as columns, the rest of the Feed as jsonb), subscriptions (``seq``
from a sequence), seen (one row per key), entries (stored once by digest) and
the outbox (``seq`` from a sequence; an entry by reference, or a notice as
jsonb). Every method that changes state is one transaction. Every database
error becomes a one-line :class:`StoreError` naming the URL with its password
blanked out.

The sender role is a session-level advisory lock held on one connection kept
for it outside the pool: when the process dies, PostgreSQL ends the session
and the lock goes with it.

The class is built in layers, one module each: pg_base (pool, transactions,
migrations at open, the sender lock), pg_outbox, pg_commands (subscriptions
and chats), and here the schedule (claim, record). pg_batch records many poll
plans in a few statements; pg_queries holds the statements the layers share;
pg_rows converts rows; pg_schema applies the migrations and redacts secrets.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bot.models import Feed
from bot.plan import Claim, PollPlan
from bot.store.pg_batch import record_batch
from bot.store.pg_commands import PgCommands
from bot.store.pg_queries import (
    RECIPIENT,
    mark_seen,
    move_feed,
    queue,
)
from bot.store.pg_rows import (
    FEED_COLS,
    SUB_COLS,
    feed_from_row,
    feed_state,
    safe_text,
    status_of,
    sub_from_row,
)

log = logging.getLogger(__name__)


class PostgresStore(PgCommands):
    """:class:`Store` on the PostgreSQL database at ``url``."""

    shared = True

    # -- the schedule --------------------------------------------------------
    async def claim_due_feeds(
        self, owner: str, now: float, limit: int, lease: float
    ) -> list[Claim]:
        async with self._tx() as conn:
            rows = await conn.fetch(
                f"""WITH due AS (
                    SELECT url FROM feeds
                    WHERE status <> 'gone' AND next_poll <= $1
                      AND (lease_until IS NULL OR lease_until <= $1)
                    ORDER BY next_poll LIMIT $2
                    FOR UPDATE SKIP LOCKED)
                UPDATE feeds f SET lease_owner = $3, lease_until = $4
                FROM due WHERE f.url = due.url
                RETURNING {", ".join("f." + c.strip() for c in FEED_COLS.split(","))}""",
                now,
                limit,
                owner,
                now + lease,
            )
            if not rows:
                return []
            urls = [r["url"] for r in rows]
            subs = await conn.fetch(
                f"""SELECT {", ".join("s." + c.strip() for c in SUB_COLS.split(","))},
                       coalesce(c.active, true) AS chat_active
                FROM subscriptions s LEFT JOIN chats c ON c.id = s.chat_id
                WHERE s.feed_url = ANY($1::text[]) ORDER BY s.seq""",
                urls,
            )
        by_feed: dict[str, list[Any]] = {}
        for s in subs:
            by_feed.setdefault(s["feed_url"], []).append(s)
        claims = []
        for r in rows:
            followers = by_feed.get(r["url"], [])
            claims.append(
                Claim(
                    feed=feed_from_row(r),
                    subscribers=tuple(sub_from_row(s) for s in followers if s["chat_active"]),
                    followed=bool(followers),
                    lease_until=now + lease,
                )
            )
        claims.sort(key=lambda c: (c.feed.next_poll, c.feed.url))
        return claims

    async def record_polls(self, plans: Sequence[PollPlan], owner: str) -> list[bool]:
        # Nearly every plan writes its feed row, seen keys and deliveries and
        # nothing else: those go as one batch, a fixed number of statements
        # however many plans. A move or a deletion is applied on its own.
        count = Counter(p.url for p in plans)
        batch = [
            i
            for i, p in enumerate(plans)
            if p.feed is not None
            and p.moved_to is None
            and p.feed.url == p.url
            and count[p.url] == 1
        ]
        results: dict[int, bool] = {}
        async with self._tx() as conn:
            if batch:
                held = await record_batch(conn, [plans[i] for i in batch], owner)
                results.update(zip(batch, held, strict=True))
            for i, plan in enumerate(plans):
                if i not in results:
                    results[i] = await self._apply(conn, plan, owner)
        return [results[i] for i in range(len(plans))]

    async def _apply(self, conn: Any, plan: PollPlan, owner: str) -> bool:
        holder = await conn.fetchrow(
            "SELECT lease_owner FROM feeds WHERE url = $1 FOR UPDATE", plan.url
        )
        if holder is None or holder["lease_owner"] != owner:
            return False
        url = plan.url
        if plan.moved_to is not None and plan.moved_to != plan.url:
            await move_feed(conn, plan.url, plan.moved_to)
            url = plan.moved_to
        if plan.feed is None:
            # Nobody followed it when claimed; if a chat has subscribed since,
            # keep the feed (just released), and its next poll plans again.
            followed = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE feed_url = $1)", url
            )
            if followed:
                await conn.execute(
                    "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE url = $1", url
                )
            else:
                await conn.execute("DELETE FROM feeds WHERE url = $1", url)
                await conn.execute("DELETE FROM seen WHERE feed_url = $1", url)
            return True
        feed = plan.feed
        await conn.execute(
            """UPDATE feeds SET next_poll = $2, status = $3, state = $4,
                   lease_owner = NULL, lease_until = NULL
            WHERE url = $1""",
            url,
            feed.next_poll,
            status_of(feed),
            feed_state(feed),
        )
        if plan.seen:
            await mark_seen(conn, url, plan.seen, plan.now)
        if plan.prune_before is not None:
            await conn.execute(
                "DELETE FROM seen WHERE feed_url = $1 AND seen_at < $2"
                " AND NOT (key = ANY($3::text[]))",
                url,
                plan.prune_before,
                [safe_text(k) for k in plan.seen],
            )
        for item in plan.enqueue:
            await queue(conn, url, item.entry, None, item.chat_ids, plan.now, RECIPIENT)
        for tell in plan.tell:
            await queue(conn, url, None, tell.notice, tell.chat_ids, plan.now, RECIPIENT)
        return True

    async def next_poll_at(self) -> float | None:
        async with self._conn() as conn:
            value = await conn.fetchval("SELECT min(next_poll) FROM feeds WHERE status <> 'gone'")
        return None if value is None else float(value)

    async def due_count(self, now: float) -> int:
        async with self._conn() as conn:
            return int(
                await conn.fetchval(
                    """SELECT count(*) FROM feeds WHERE status <> 'gone' AND next_poll <= $1
                    AND (lease_until IS NULL OR lease_until <= $1)""",
                    now,
                )
            )

    # -- feeds ---------------------------------------------------------------
    async def get_feed(self, url: str) -> Feed | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(f"SELECT {FEED_COLS} FROM feeds WHERE url = $1", url)
        return None if row is None else feed_from_row(row)

    async def seen(self, feed_url: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        stored = {safe_text(k): k for k in keys}
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT key FROM seen WHERE feed_url = $1 AND key = ANY($2::text[])",
                feed_url,
                list(stored),
            )
        return {stored[r["key"]] for r in rows}
