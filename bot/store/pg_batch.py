"""Recording many poll plans at once: the PostgreSQL store's hot path.

A poll cycle records hundreds of plans in one transaction. Applying them one
by one costs several round trips each; here every kind of write is one
statement over arrays (``unnest``), so a batch costs at most five statements
whatever its size: the feed rows (which also checks the leases), the pruning,
the seen keys, the entry bodies and the outbox rows.

Only plans that neither move nor delete their feed come here, each URL once
(bot/store/postgres.py applies the rest one by one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.plan import PollPlan
from bot.store import codec
from bot.store.pg_rows import entry_body, feed_state, notice_to_json, safe_text, status_of


async def record_batch(conn: Any, plans: Sequence[PollPlan], owner: str) -> list[bool]:
    """Apply ``plans`` (see PollPlan) whose lease ``owner`` still holds; True
    for those, in order."""
    feeds = [p.feed for p in plans if p.feed is not None]
    # The lease check is the UPDATE's WHERE: it writes, and returns, only the
    # rows this owner holds.
    rows = await conn.fetch(
        """UPDATE feeds f SET next_poll = p.next_poll, status = p.status,
               state = p.state::jsonb, lease_owner = NULL, lease_until = NULL
        FROM unnest($1::text[], $2::float8[], $3::text[], $4::text[])
             AS p(url, next_poll, status, state)
        WHERE f.url = p.url AND f.lease_owner = $5
        RETURNING f.url""",
        [f.url for f in feeds],
        [f.next_poll for f in feeds],
        [status_of(f) for f in feeds],
        [json.dumps(feed_state(f)) for f in feeds],
        owner,
    )
    held = {r["url"] for r in rows}
    live = [p for p in plans if p.url in held]

    # Pruning before marking is the same as "prune all but the keys marked":
    # a key pruned here and marked below ends up marked at ``now`` either way.
    pruning = [p for p in live if p.prune_before is not None]
    if pruning:
        await conn.execute(
            """DELETE FROM seen s USING unnest($1::text[], $2::float8[]) AS p(url, before)
            WHERE s.feed_url = p.url AND s.seen_at < p.before""",
            [p.url for p in pruning],
            [p.prune_before for p in pruning],
        )

    seen = [(p.url, safe_text(key), p.now) for p in live for key in dict.fromkeys(p.seen)]
    if seen:
        await conn.execute(
            """INSERT INTO seen (feed_url, key, seen_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::float8[])
            ON CONFLICT (feed_url, key) DO UPDATE SET seen_at = excluded.seen_at""",
            *map(list, zip(*seen, strict=True)),
        )

    bodies: dict[str, str] = {}
    # (chat, feed url, digest, entry id, notice, created), in outbox order.
    queued: list[tuple[int, str, str | None, str | None, str | None, float]] = []
    for p in live:
        for item in p.enqueue:
            digest = codec.entry_digest(item.entry)
            bodies.setdefault(digest, json.dumps(entry_body(item.entry)))
            eid = safe_text(item.entry.id)
            queued += [(c, p.url, digest, eid, None, p.now) for c in item.chat_ids]
        for tell in p.tell:
            notice = json.dumps(notice_to_json(tell.notice))
            queued += [(c, p.url, None, None, notice, p.now) for c in tell.chat_ids]
    if bodies:
        # Sorted, so that two processes lock shared entries in the same order;
        # DO UPDATE locks a row that exists, so no collect() can delete it
        # before our outbox rows refer to it.
        digests = sorted(bodies)
        await conn.execute(
            """INSERT INTO entries (digest, body)
            SELECT d, b::jsonb FROM unnest($1::text[], $2::text[]) AS t(d, b)
            ON CONFLICT (digest) DO UPDATE SET digest = excluded.digest""",
            digests,
            [bodies[d] for d in digests],
        )
    if queued:
        # Lock the chats first: a pause (UPDATE chats, then drop the chat's
        # outbox) in another transaction then waits for this one and drops
        # these rows too, or this one waits for it and sees the chat paused.
        await conn.execute(
            "SELECT 1 FROM chats WHERE id = ANY($1::bigint[]) FOR SHARE",
            sorted({row[0] for row in queued}),
        )
        # Only to chats still subscribed and not paused; seq in list order.
        await conn.execute(
            """INSERT INTO outbox (chat_id, feed_url, entry_digest, entry_id, notice, created)
            SELECT c, u, d, e, n::jsonb, t FROM unnest(
                $1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
                WITH ORDINALITY AS q(c, u, d, e, n, t, i)
            WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.chat_id = c AND s.feed_url = u)
              AND NOT EXISTS (SELECT 1 FROM chats ch WHERE ch.id = c AND NOT ch.active)
            ORDER BY i""",
            *map(list, zip(*queued, strict=True)),
        )
    return [p.url in held for p in plans]
