"""The sqlitedict backend: the embedded default, one SQLite file, one process.

Everything lives in one sqlitedict table (key layout: sqlite_keys.py), so one
commit is atomic across feeds, seen keys and the outbox. Each mutating method
is one transaction (SqliteFile.transaction): committed at its end, or rolled
back whole and reported as StoreError. The methods are coroutines but never
await inside: on one event loop each runs to its end before another starts,
so no two of them interleave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bot.models import Chat, ChatKind, Delivery, Entry, Feed, FeedStatus, Subscription
from bot.plan import Claim, PollPlan
from bot.store import codec
from bot.store import sqlite_keys as k
from bot.store.base import OutboxStats, Store, StoreStats
from bot.store.sqlite_file import TABLE, SqliteFile
from bot.store.sqlite_outbox import Outbox

__all__ = ["TABLE", "SqliteStore"]


class SqliteStore(Store):
    """:class:`Store` on one sqlitedict table in the SQLite file at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.f = SqliteFile(path)
        self.box = Outbox(self.f)

    # -- lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        self.f.open()
        try:
            with self.f.transaction("opening the store"):
                schema = int(self.f.get("meta:schema") or 0)
                if schema < 2:
                    self._upgrade(schema)
                    self.f.put("meta:schema", k.SCHEMA)
                # One process per file (the lock): any lease is a dead one's.
                self.f.delete_prefix(k.LEASE)
            self.box.load_seq()
        except BaseException:
            self.f.close()
            raise

    def _upgrade(self, schema: int) -> None:
        """Schema 1 (no due index, no subscription seq, no heads) to 2."""
        if schema == 0:
            return  # a new file: nothing to index
        for _, d in self.f.scan("feed:"):
            feed = codec.feed_from_dict(d)
            if feed.status != FeedStatus.GONE:
                self.f.put(k.due_key(feed.next_poll, feed.url), feed.url)
        subs = [codec.subscription_from_dict(d) for _, d in self.f.scan("sub:")]
        subs.sort(key=lambda s: (s.created, s.chat_id, s.feed_url))
        for n, sub in enumerate(subs, 1):
            sub.seq = n
            self.f.put(k.sub_key(sub.chat_id, sub.feed_url), codec.subscription_to_dict(sub))
        self.f.put("meta:subseq", len(subs))
        self.box.rebuild_heads()

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
        with self.f.transaction("claiming due feeds"):
            leases = dict(self.f.scan(k.LEASE))
            # Live leases are at most one batch in flight: reading that many
            # more due rows is enough to find ``limit`` free ones.
            due = self.f.scan(k.DUE, below=k.due_upto(now), limit=limit + len(leases))
            for _, url in due:
                held = leases.get(k.lease_key(url))
                if held is not None and held["until"] > now:
                    continue
                feed = self._feed(url)
                if feed is None or feed.status == FeedStatus.GONE:
                    continue
                subs, followed = self._subscribers(url)
                until = now + lease
                self.f.put(k.lease_key(url), {"owner": owner, "until": until})
                claims.append(Claim(feed, tuple(subs), followed, until))
                if len(claims) == limit:
                    break
        return claims

    async def record_polls(self, plans: Sequence[PollPlan], owner: str) -> list[bool]:
        if not plans:
            return []
        applied: list[bool] = []
        try:
            with self.f.transaction("recording polls"):
                applied = [self._apply(plan, owner) for plan in plans]
        except BaseException:
            self.box.load_seq()
            raise
        return applied

    def _apply(self, plan: PollPlan, owner: str) -> bool:
        held = self.f.get(k.lease_key(plan.url))
        if held is None or held["owner"] != owner or self._feed(plan.url) is None:
            return False
        self.f.delete(k.lease_key(plan.url))
        url = plan.url
        if plan.moved_to is not None and plan.moved_to != url:
            self._move_feed(url, plan.moved_to)
            url = plan.moved_to
        if plan.feed is None:
            if self.f.first_key(k.fsub_prefix(url)) is None:
                self._delete_feed(url)
            return True
        self._put_feed(plan.feed)
        url = plan.feed.url
        prefix = k.seen_prefix(url)
        for key in dict.fromkeys(plan.seen):
            self.f.put(prefix + k.esc(key), plan.now)
        if plan.prune_before is not None:
            self._prune(url, plan.seen, plan.prune_before)
        if plan.enqueue or plan.tell:
            live = {s.chat_id for s in self._subscribers(url)[0]}
            for q in plan.enqueue:
                self.box.queue(url, (c for c in q.chat_ids if c in live), plan.now, entry=q.entry)
            for t in plan.tell:
                self.box.queue(url, (c for c in t.chat_ids if c in live), plan.now, notice=t.notice)
        return True

    async def next_poll_at(self) -> float | None:
        rows = self._read().scan(k.DUE, limit=1)
        if not rows:
            return None
        feed = self._feed(rows[0][1])
        return None if feed is None else feed.next_poll

    async def due_count(self, now: float) -> int:
        f = self._read()
        due = f.count(k.DUE, below=k.due_upto(now))
        for key, held in f.scan(k.LEASE):
            if held["until"] > now:
                feed = self._feed(k.unesc(key.removeprefix(k.LEASE)))
                if feed is not None and feed.status != FeedStatus.GONE and feed.next_poll <= now:
                    due -= 1
        return due

    # -- feeds -------------------------------------------------------------------
    async def get_feed(self, url: str) -> Feed | None:
        self._read()
        return self._feed(url)

    def _feed(self, url: str) -> Feed | None:
        d = self.f.get(k.feed_key(url))
        return None if d is None else codec.feed_from_dict(d)

    def _put_feed(self, feed: Feed) -> None:
        old = self._feed(feed.url)
        if old is not None:
            self.f.delete(k.due_key(old.next_poll, old.url))
        self.f.put(k.feed_key(feed.url), codec.feed_to_dict(feed))
        if feed.status != FeedStatus.GONE:
            self.f.put(k.due_key(feed.next_poll, feed.url), feed.url)

    def _delete_feed(self, url: str) -> None:
        old = self._feed(url)
        if old is not None:
            self.f.delete(k.due_key(old.next_poll, old.url))
        self.f.delete(k.feed_key(url))
        self.f.delete(k.lease_key(url))
        self.f.delete_prefix(k.seen_prefix(url))

    def _prune(self, url: str, keep: Sequence[str], before: float) -> None:
        prefix = k.seen_prefix(url)
        kept = {prefix + k.esc(key) for key in keep}
        sql = f'SELECT key FROM "{TABLE}" WHERE key >= ? AND key < ? AND CAST(value AS REAL) < ?'
        for (key,) in self.f.select(sql, (prefix, k.upper(prefix), before)):
            if key not in kept:
                self.f.delete(key)

    def _move_feed(self, old_url: str, new_url: str) -> None:
        """The feed, its seen keys, subscriptions and pending deliveries move
        to ``new_url``, merging with what is there (the earlier record wins)."""
        old = self._feed(old_url)
        if old is not None:
            self._delete_feed_record(old)
            if self._feed(new_url) is None:
                self._put_feed(replace(old, url=new_url))
        old_prefix, new_prefix = k.seen_prefix(old_url), k.seen_prefix(new_url)
        moved = {new_prefix + key[len(old_prefix) :]: t for key, t in self.f.scan(old_prefix)}
        if moved:
            for key, t in self.f.get_many(moved).items():
                moved[key] = max(moved[key], t)
            for key, t in moved.items():
                self.f.put(key, t)
            self.f.delete_prefix(old_prefix)
        for sub in self._feed_subs(old_url):
            self._delete_sub(sub.chat_id, old_url)
            if self.f.get(k.sub_key(sub.chat_id, new_url)) is None:
                self._put_sub(replace(sub, feed_url=new_url))
            rows = self.box.chat_rows(sub.chat_id)
            self.box.move(rows, lambda r: r["feed_url"] == old_url, "feed_url", new_url)

    def _delete_feed_record(self, feed: Feed) -> None:
        self.f.delete(k.due_key(feed.next_poll, feed.url))
        self.f.delete(k.feed_key(feed.url))
        self.f.delete(k.lease_key(feed.url))

    async def seen(self, feed_url: str, keys: Sequence[str]) -> set[str]:
        prefix = k.seen_prefix(feed_url)
        by_row = {prefix + k.esc(key): key for key in keys}
        return {by_row[row] for row in self._read().has_many(by_row)}

    # -- subscriptions and chats -------------------------------------------------
    def _sub(self, chat_id: int, url: str) -> Subscription | None:
        d = self.f.get(k.sub_key(chat_id, url))
        return None if d is None else codec.subscription_from_dict(d)

    def _put_sub(self, sub: Subscription) -> None:
        self.f.put(k.sub_key(sub.chat_id, sub.feed_url), codec.subscription_to_dict(sub))
        self.f.put(k.fsub_key(sub.feed_url, sub.chat_id), sub.chat_id)

    def _delete_sub(self, chat_id: int, url: str) -> None:
        self.f.delete(k.sub_key(chat_id, url))
        self.f.delete(k.fsub_key(url, chat_id))

    def _feed_subs(self, url: str) -> list[Subscription]:
        chat_ids = [chat_id for _, chat_id in self.f.scan(k.fsub_prefix(url))]
        found = self.f.get_many(k.sub_key(chat_id, url) for chat_id in chat_ids)
        subs = [codec.subscription_from_dict(d) for d in found.values()]
        subs.sort(key=lambda s: (s.seq, s.chat_id))
        return subs

    def _subscribers(self, url: str) -> tuple[list[Subscription], bool]:
        """The feed's subscriptions whose chat is active (or unknown), and
        whether anyone follows it at all."""
        subs = self._feed_subs(url)
        chats = self.f.get_many(k.chat_key(s.chat_id) for s in subs)
        active = [s for s in subs if chats.get(k.chat_key(s.chat_id), {}).get("active", True)]
        return active, bool(subs)

    def _chat(self, chat_id: int) -> Chat | None:
        d = self.f.get(k.chat_key(chat_id))
        return None if d is None else codec.chat_from_dict(d)

    def _put_chat(self, chat: Chat) -> None:
        self.f.put(k.chat_key(chat.id), codec.chat_to_dict(chat))

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
                if self._sub(chat.id, sub.feed_url) is not None:
                    return None
                self._put_chat(replace(chat, active=True))
                if new_feed is not None:
                    self._delete_feed(sub.feed_url)
                    self._put_feed(replace(new_feed, url=sub.feed_url))
                    prefix = k.seen_prefix(sub.feed_url)
                    for key in dict.fromkeys(seen):
                        self.f.put(prefix + k.esc(key), now)
                seq = int(self.f.get("meta:subseq") or 0) + 1
                self.f.put("meta:subseq", seq)
                stored = replace(sub, chat_id=chat.id, seq=seq)
                self._put_sub(stored)
                if sample is not None:
                    self.box.queue(sub.feed_url, [chat.id], now, entry=sample)
        except BaseException:
            self.box.load_seq()
            raise
        return stored

    async def unsubscribe(self, chat_id: int, feed_url: str) -> bool:
        with self.f.transaction("unsubscribing"):
            if self._sub(chat_id, feed_url) is None:
                return False
            self._delete_sub(chat_id, feed_url)
            self.box.drop_chat(chat_id, keep=lambda r: r["feed_url"] != feed_url)
            if self.f.first_key(k.fsub_prefix(feed_url)) is None:
                self._delete_feed(feed_url)
        return True

    async def update_subscription(self, sub: Subscription) -> bool:
        with self.f.transaction("changing a subscription"):
            stored = self._sub(sub.chat_id, sub.feed_url)
            if stored is None:
                return False
            self._put_sub(replace(sub, seq=stored.seq))
        return True

    async def get_subscription(self, chat_id: int, feed_url: str) -> Subscription | None:
        self._read()
        return self._sub(chat_id, feed_url)

    async def chat_subscriptions(self, chat_id: int) -> list[Subscription]:
        rows = self._read().scan(k.sub_prefix(chat_id))
        subs = [codec.subscription_from_dict(d) for _, d in rows]
        subs.sort(key=lambda s: (s.seq, s.created, s.feed_url))
        return subs

    async def active_subscribers(self, feed_url: str) -> list[Subscription]:
        self._read()
        return self._subscribers(feed_url)[0]

    async def get_chat(self, chat_id: int) -> Chat | None:
        self._read()
        return self._chat(chat_id)

    async def save_chat(self, chat: Chat) -> None:
        with self.f.transaction("saving a chat"):
            self._put_chat(chat)

    async def pause_chat(self, chat_id: int) -> bool:
        with self.f.transaction("pausing a chat"):
            chat = self._chat(chat_id)
            self.box.drop_chat(chat_id)
            if chat is None or not chat.active:
                return False
            self._put_chat(replace(chat, active=False))
        return True

    async def resume_chat(self, chat: Chat) -> bool:
        with self.f.transaction("resuming a chat"):
            old = self._chat(chat.id)
            self._put_chat(replace(chat, active=True))
            paused = old is not None and not old.active
            return paused and self.f.first_key(k.sub_prefix(chat.id)) is not None

    async def migrate_chat(self, old_id: int, new_id: int) -> None:
        if old_id == new_id:
            return
        with self.f.transaction("migrating a chat"):
            old = self._chat(old_id)
            if old is not None:
                self.f.delete(k.chat_key(old_id))
                if self._chat(new_id) is None:
                    kind = ChatKind.SUPERGROUP if old.kind == ChatKind.GROUP else old.kind
                    self._put_chat(replace(old, id=new_id, kind=kind))
            for _, d in self.f.scan(k.sub_prefix(old_id)):
                sub = codec.subscription_from_dict(d)
                self._delete_sub(old_id, sub.feed_url)
                if self._sub(new_id, sub.feed_url) is None:
                    self._put_sub(replace(sub, chat_id=new_id))
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
            self.box.load_seq()
            raise

    async def pending(self) -> list[Delivery]:
        self._read()
        return self.box.deliveries(self.box.rows())

    # -- operating ---------------------------------------------------------------
    async def stats(self) -> StoreStats:
        f = self._read()
        oldest = f.select(
            f"SELECT MIN(json_extract(value, '$.created')) FROM \"{TABLE}\" "
            "WHERE key >= ? AND key < ?",
            (k.OUTBOX, k.upper(k.OUTBOX)),
        )[0][0]
        return StoreStats(
            chats=f.count("chat:"),
            active_chats=f.count("chat:", "json_extract(value, '$.active') = 1"),
            feeds=f.count("feed:"),
            failing_feeds=f.count("feed:", "json_extract(value, '$.error_count') > 0"),
            subscriptions=f.count("sub:"),
            outbox=OutboxStats(f.count(k.OUTBOX), None if oldest is None else float(oldest)),
        )

    async def hold_sender(self, owner: str) -> bool:
        return True  # one process per file, by its lock
