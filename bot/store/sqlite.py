"""The sqlitedict backend: the embedded default, one SQLite file, one process.

Everything lives in one sqlitedict table (key layout: sqlite_keys.py), so one
commit is atomic across feeds, seen keys and the outbox. Each mutating method
is one transaction (SqliteFile.transaction): committed at its end, or rolled
back whole and reported as StoreError. The methods are coroutines but never
await inside: on one event loop each runs to its end before another starts,
so no two of them interleave.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bot.models import Chat, ChatKind, Delivery, Entry, Feed, FeedStatus, Notice, Subscription
from bot.plan import Claim, PollPlan
from bot.store import codec
from bot.store import sqlite_keys as k
from bot.store.base import ChatCount, OutboxStats, Store, StoreStats
from bot.store.sqlite_file import TABLE, SqliteFile
from bot.store.sqlite_outbox import Outbox
from bot.store.sqlite_rows import Rows

__all__ = ["TABLE", "SqliteStore"]


class SqliteStore(Store):
    """:class:`Store` on one sqlitedict table in the SQLite file at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.f = SqliteFile(path)
        self.box = Outbox(self.f)
        #: Live leases by lease key: {"owner", "until"}. In memory, not in
        #: the file: one process holds the file (its lock) and any lease
        #: found at open would be a dead process's, so a lease never needs to
        #: outlive the process, and a claim then writes nothing (no commit,
        #: no fsync per claim).
        self.leases: dict[str, dict[str, object]] = {}
        self.rows = Rows(self.f, self.box, self.leases)

    # -- lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        self.f.open()
        try:
            with self.f.transaction("opening the store"):
                schema = int(self.f.get("meta:schema") or 0)
                if schema < 2:
                    self.rows.upgrade(schema)
                    self.f.put("meta:schema", k.SCHEMA)
                # Files written before leases moved to memory may hold some:
                # one process per file (the lock), so they are a dead one's.
                self.f.delete_prefix(k.LEASE)
            self.leases.clear()
        except BaseException:
            self.f.close()
            raise

    async def close(self) -> None:
        self.f.close()

    def _read(self) -> SqliteFile:
        self.f.revive()
        return self.f

    # -- the schedule ------------------------------------------------------------
    async def claim_due_feeds(
        self, owner: str, now: float, limit: int, lease: float
    ) -> list[Claim]:
        if limit <= 0:
            return []
        claims: list[Claim] = []
        f = self._read()  # reads only: the leases are in memory
        leases = self.leases
        # Live leases are at most the batches in flight: reading that many
        # more due rows is enough to find ``limit`` free ones.
        due = f.scan(k.DUE, below=k.due_upto(now), limit=limit + len(leases))
        free = [url for _, url in due if _until(leases.get(k.lease_key(url)), now) <= now]
        found = f.get_many(k.feed_key(url) for url in free)
        feeds = [
            feed
            for url in free
            if (d := found.get(k.feed_key(url))) is not None
            and (feed := codec.feed_from_dict(d)).status != FeedStatus.GONE
        ][:limit]
        followers = self.rows.subscribers_of([feed.url for feed in feeds])
        until = now + lease
        for feed in feeds:
            leases[k.lease_key(feed.url)] = {"owner": owner, "until": until}
            subs, followed = followers[feed.url]
            claims.append(Claim(feed, tuple(subs), followed, until))
        return claims

    async def record_polls(self, plans: Sequence[PollPlan], owner: str) -> list[bool]:
        if not plans:
            return []
        applied: list[bool] = []
        held_before = dict(self.leases)
        try:
            with self.f.transaction("recording polls"):
                # Each plan's lease and feed rows, read in one statement for
                # the batch; only when no plan moves or deletes a feed, since
                # those may change the rows a later plan of the batch reads,
                # and only when no URL comes twice (the second finds no lease).
                simple = len({p.url for p in plans}) == len(plans) and all(
                    p.moved_to is None and p.feed is not None for p in plans
                )
                rows = self.f.get_many(k.feed_key(p.url) for p in plans) if simple else None
                if rows is None:
                    applied = [self._apply(plan, owner) for plan in plans]
                else:
                    applied = self._apply_batch(plans, owner, rows)
        except BaseException:
            self.box.forget_seq()
            # Rolled back: the leases it released are held again.
            self.leases.clear()
            self.leases.update(held_before)
            raise
        return applied

    def _apply_batch(
        self, plans: Sequence[PollPlan], owner: str, rows: dict[str, Any]
    ) -> list[bool]:
        """Plans of distinct URLs, none moving or deleting a feed, their rows
        read. A schedule-only plan (a 304, an unchanged body) costs no
        statement of its own: its rows join one DELETE and one REPLACE for
        the batch (old due row and lease out; feed and new due row in)."""
        applied: list[bool] = []
        gone: list[str] = []
        put: list[tuple[str, Any]] = []
        for plan in plans:
            feed = plan.feed
            assert feed is not None
            if (
                plan.changed
                or plan.seen
                or plan.enqueue
                or plan.tell
                or plan.prune_before
                or (feed.url != plan.url)
            ):
                applied.append(self._apply(plan, owner, rows))
                continue
            held, stored = self.leases.get(k.lease_key(plan.url)), rows.get(k.feed_key(plan.url))
            if held is None or held["owner"] != owner or stored is None:
                applied.append(False)
                continue
            del self.leases[k.lease_key(plan.url)]
            old_next = float(stored.get("next_poll") or 0.0)
            gone.append(k.due_key(old_next, plan.url))
            put.append((k.feed_key(plan.url), codec.feed_to_dict(feed)))
            if feed.status != FeedStatus.GONE:
                put.append((k.due_key(feed.next_poll, feed.url), feed.url))
            applied.append(True)
        # Deletes first: a feed's new due row may be its old one.
        self.f.delete_many(gone)
        self.f.put_many(put)
        return applied

    def _apply(self, plan: PollPlan, owner: str, rows: dict[str, Any] | None = None) -> bool:
        stored = (rows if rows is not None else self.f.get_many([k.feed_key(plan.url)])).get(
            k.feed_key(plan.url)
        )
        held = self.leases.get(k.lease_key(plan.url))
        if held is None or held["owner"] != owner or stored is None:
            return False
        del self.leases[k.lease_key(plan.url)]
        url = plan.url
        if plan.moved_to is not None and plan.moved_to != url:
            self.rows.move_feed(url, plan.moved_to)
            url = plan.moved_to
        if plan.feed is None:
            if self.f.first_key(k.fsub_prefix(url)) is None:
                self.rows.delete_feed(url)
            return True
        if url == plan.url == plan.feed.url:  # the stored record is still the one read
            self.rows.put_feed(plan.feed, old=codec.feed_from_dict(stored))
        else:
            self.rows.put_feed(plan.feed)
        url = plan.feed.url
        prefix = k.seen_prefix(url)
        # Every parsed key is re-marked each parse: one statement, not one a key.
        self.f.put_many([(prefix + k.esc(key), plan.now) for key in dict.fromkeys(plan.seen)])
        if plan.prune_before is not None:
            self.rows.prune(url, plan.seen, plan.prune_before)
        if plan.enqueue or plan.tell:
            live = {s.chat_id for s in self.rows.subscribers(url)[0]}
            for q in plan.enqueue:
                self.box.queue(url, (c for c in q.chat_ids if c in live), plan.now, entry=q.entry)
            for t in plan.tell:
                self.box.queue(url, (c for c in t.chat_ids if c in live), plan.now, notice=t.notice)
        return True

    async def next_poll_at(self) -> float | None:
        rows = self._read().scan(k.DUE, limit=1)
        if not rows:
            return None
        feed = self.rows.feed(rows[0][1])
        return None if feed is None else feed.next_poll

    async def due_count(self, now: float) -> int:
        f = self._read()
        due = f.count(k.DUE, below=k.due_upto(now))
        for key, held in list(self.leases.items()):
            if _until(held, now) > now:
                feed = self.rows.feed(k.unesc(key.removeprefix(k.LEASE)))
                if feed is not None and feed.status != FeedStatus.GONE and feed.next_poll <= now:
                    due -= 1
        return due

    # -- feeds -------------------------------------------------------------------
    async def get_feed(self, url: str) -> Feed | None:
        self._read()
        return self.rows.feed(url)

    async def seen(self, feed_url: str, keys: Sequence[str]) -> set[str]:
        prefix = k.seen_prefix(feed_url)
        by_row = {prefix + k.esc(key): key for key in keys}
        return {by_row[row] for row in self._read().has_many(by_row)}

    # -- subscriptions and chats -------------------------------------------------
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
        try:
            with self.f.transaction("subscribing"):
                if self.rows.sub(chat.id, sub.feed_url) is not None:
                    return None
                self.rows.put_chat(replace(chat, active=True))
                if new_feed is not None:
                    self.rows.delete_feed(sub.feed_url)
                    self.rows.put_feed(replace(new_feed, url=sub.feed_url))
                    prefix = k.seen_prefix(sub.feed_url)
                    for key in dict.fromkeys(seen):
                        self.f.put(prefix + k.esc(key), now)
                seq = int(self.f.get("meta:subseq") or 0) + 1
                self.f.put("meta:subseq", seq)
                stored = replace(sub, chat_id=chat.id, seq=seq)
                self.rows.put_sub(stored)
                if sample is not None:
                    self.box.queue(sub.feed_url, [chat.id], now, entry=sample)
        except BaseException:
            self.box.forget_seq()
            raise
        return stored

    async def unsubscribe(self, chat_id: int, feed_url: str) -> bool:
        with self.f.transaction("unsubscribing"):
            if self.rows.sub(chat_id, feed_url) is None:
                return False
            self.rows.delete_sub(chat_id, feed_url)
            self.box.drop_chat(chat_id, keep=lambda r: r["feed_url"] != feed_url)
            if self.f.first_key(k.fsub_prefix(feed_url)) is None:
                self.rows.delete_feed(feed_url)
        return True

    async def update_subscription(self, sub: Subscription) -> bool:
        with self.f.transaction("changing a subscription"):
            stored = self.rows.sub(sub.chat_id, sub.feed_url)
            if stored is None:
                return False
            self.rows.put_sub(replace(sub, seq=stored.seq))
        return True

    async def get_subscription(self, chat_id: int, feed_url: str) -> Subscription | None:
        self._read()
        return self.rows.sub(chat_id, feed_url)

    async def chat_subscriptions(self, chat_id: int) -> list[Subscription]:
        rows = self._read().scan(k.sub_prefix(chat_id))
        subs = [codec.subscription_from_dict(d) for _, d in rows]
        subs.sort(key=lambda s: (s.seq, s.created, s.feed_url))
        return subs

    async def active_subscribers(self, feed_url: str) -> list[Subscription]:
        self._read()
        return self.rows.subscribers(feed_url)[0]

    async def get_chat(self, chat_id: int) -> Chat | None:
        self._read()
        return self.rows.chat(chat_id)

    async def save_chat(self, chat: Chat) -> None:
        with self.f.transaction("saving a chat"):
            self.rows.put_chat(chat)

    async def pause_chat(self, chat_id: int) -> bool:
        with self.f.transaction("pausing a chat"):
            chat = self.rows.chat(chat_id)
            self.box.drop_chat(chat_id)
            if chat is None or not chat.active:
                return False
            self.rows.put_chat(replace(chat, active=False))
        return True

    async def resume_chat(self, chat: Chat) -> bool:
        with self.f.transaction("resuming a chat"):
            old = self.rows.chat(chat.id)
            self.rows.put_chat(replace(chat, active=True))
            paused = old is not None and not old.active
            return paused and self.f.first_key(k.sub_prefix(chat.id)) is not None

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        if old_id == new_id:
            return
        with self.f.transaction("migrating a chat"):
            old = self.rows.chat(old_id)
            if old is not None:
                self.f.delete(k.chat_key(old_id))
                if self.rows.chat(new_id) is None:
                    kind = ChatKind.SUPERGROUP if old.kind == ChatKind.GROUP else old.kind
                    self.rows.put_chat(replace(old, id=new_id, kind=kind))
            for _, d in self.f.scan(k.sub_prefix(old_id)):
                sub = codec.subscription_from_dict(d)
                self.rows.delete_sub(old_id, sub.feed_url)
                if self.rows.sub(new_id, sub.feed_url) is None:
                    self.rows.put_sub(replace(sub, chat_id=new_id))
            rows = sorted(self.box.chat_rows(old_id) + self.box.chat_rows(new_id))
            self.box.move(rows, lambda r: r["chat_id"] == old_id, "chat_id", new_id)

    # -- the outbox --------------------------------------------------------------
    async def outbox_chats(self, now: float, limit: int) -> list[int]:
        self._read()
        heads = self.box.heads()
        return [r["chat_id"] for _, r in heads if r.get("not_before", 0.0) <= now][:limit]

    async def next_delivery(self, chat_id: int) -> Delivery | None:
        self._read()
        return self.box.first(chat_id)

    async def next_delivery_at(self) -> float | None:
        self._read()
        heads = self.box.heads()
        return min((r.get("not_before", 0.0) for _, r in heads), default=None)

    async def complete_delivery(self, delivery: Delivery) -> None:
        with self.f.transaction("completing a delivery"):
            record = self.f.get(k.outbox_key(delivery.seq))
            if record is not None:
                self.box.drop(delivery.seq, record)

    async def reschedule_delivery(self, delivery: Delivery) -> None:
        with self.f.transaction("rescheduling a delivery"):
            stored = self.f.get(k.outbox_key(delivery.seq))
            if stored is None:
                return
            record = {
                **stored,
                "chat_id": delivery.chat_id,
                "not_before": delivery.not_before,
                "attempts": delivery.attempts,
                "sent_parts": delivery.sent_parts,
            }
            self.box.update(delivery.seq, stored, record)

    async def enqueue(
        self, feed_url: str, entry: Entry, chat_ids: Sequence[int], now: float
    ) -> list[Delivery]:
        try:
            with self.f.transaction("queueing deliveries"):
                return self.box.queue(feed_url, chat_ids, now, entry=entry)
        except BaseException:
            self.box.forget_seq()
            raise

    async def pending(self) -> list[Delivery]:
        self._read()
        return self.box.deliveries(self.box.rows())

    async def notify_private_chats(self, notice: Notice, now: float) -> int:
        chats = self._read().select(
            f'SELECT value FROM "{TABLE}" WHERE key >= ? AND key < ?'
            " AND json_extract(value, '$.kind') = ? AND json_extract(value, '$.active') = 1",
            ("chat:", k.upper("chat:"), str(ChatKind.PRIVATE)),
        )
        ids = sorted(int(json.loads(value)["id"]) for (value,) in chats)
        try:
            with self.f.transaction("queueing a broadcast"):
                return len(self.box.queue("", ids, now, notice=notice))
        except BaseException:
            self.box.forget_seq()
            raise

    async def pending_notices(self, code: str) -> int:
        rows = self._read().select(
            f'SELECT COUNT(*) FROM "{TABLE}" WHERE key >= ? AND key < ?'
            " AND json_extract(value, '$.notice.code') = ?",
            (k.OUTBOX, k.upper(k.OUTBOX), code),
        )
        return int(rows[0][0])

    # -- operating ---------------------------------------------------------------
    async def stats(self) -> StoreStats:
        f = self._read()
        oldest = f.select(
            f"SELECT MIN(json_extract(value, '$.created')) FROM \"{TABLE}\" "
            "WHERE key >= ? AND key < ?",
            (k.OUTBOX, k.upper(k.OUTBOX)),
        )[0][0]
        kinds = f.select(
            "SELECT json_extract(value, '$.kind') AS kind,"
            " SUM(json_extract(value, '$.active') = 1), SUM(json_extract(value, '$.active') <> 1)"
            f' FROM "{TABLE}" WHERE key >= ? AND key < ? GROUP BY kind ORDER BY kind',
            ("chat:", k.upper("chat:")),
        )
        return StoreStats(
            chats=f.count("chat:"),
            active_chats=f.count("chat:", "json_extract(value, '$.active') = 1"),
            feeds=f.count("feed:"),
            failing_feeds=f.count("feed:", "json_extract(value, '$.error_count') > 0"),
            subscriptions=f.count("sub:"),
            outbox=OutboxStats(f.count(k.OUTBOX), None if oldest is None else float(oldest)),
            by_kind=tuple(ChatCount(kind, int(on), int(off)) for kind, on, off in kinds),
        )

    async def hold_sender(self, owner: str) -> bool:
        return True  # one process per file, by its lock


def _until(held: dict[str, object] | None, now: float) -> float:
    """When a lease runs out (``now`` for none)."""
    return now if held is None else float(held["until"])  # type: ignore[arg-type]
