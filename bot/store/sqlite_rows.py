"""The embedded store's records and their indexes: feeds (with the due
index), seen keys, subscriptions (with the per-feed index) and chats.

These run inside the caller's transaction (``SqliteFile.transaction``); none
commits. SqliteStore (sqlite.py) composes them into the Store methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bot.models import Chat, Feed, FeedStatus, Subscription
from bot.store import codec
from bot.store import sqlite_keys as k
from bot.store.sqlite_file import TABLE, SqliteFile
from bot.store.sqlite_outbox import Outbox


class Rows:
    def __init__(self, file: SqliteFile, box: Outbox, leases: dict[str, dict[str, object]]) -> None:
        self.f = file
        self.box = box
        #: The store's live leases (in memory: SqliteStore.leases).
        self.leases = leases

    def upgrade(self, schema: int) -> None:
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

    def feed(self, url: str) -> Feed | None:
        d = self.f.get(k.feed_key(url))
        return None if d is None else codec.feed_from_dict(d)

    def put_feed(self, feed: Feed, old: Feed | None = None) -> None:
        """Write the feed and its due row; ``old``, the record stored now
        (read here when not given), says which due row to replace."""
        if old is None:
            old = self.feed(feed.url)
        if old is not None:
            self.f.delete(k.due_key(old.next_poll, old.url))
        self.f.put(k.feed_key(feed.url), codec.feed_to_dict(feed))
        if feed.status != FeedStatus.GONE:
            self.f.put(k.due_key(feed.next_poll, feed.url), feed.url)

    def delete_feed(self, url: str) -> None:
        old = self.feed(url)
        if old is not None:
            self.f.delete(k.due_key(old.next_poll, old.url))
        self.f.delete(k.feed_key(url))
        self.leases.pop(k.lease_key(url), None)
        self.f.delete_prefix(k.seen_prefix(url))

    def prune(self, url: str, keep: Sequence[str], before: float) -> None:
        prefix = k.seen_prefix(url)
        kept = {prefix + k.esc(key) for key in keep}
        sql = f'SELECT key FROM "{TABLE}" WHERE key >= ? AND key < ? AND CAST(value AS REAL) < ?'
        for (key,) in self.f.select(sql, (prefix, k.upper(prefix), before)):
            if key not in kept:
                self.f.delete(key)

    def move_feed(self, old_url: str, new_url: str) -> None:
        """The feed, its seen keys, subscriptions and pending deliveries move
        to ``new_url``, merging with what is there (the earlier record wins)."""
        old = self.feed(old_url)
        if old is not None:
            self.delete_feed_record(old)
            if self.feed(new_url) is None:
                self.put_feed(replace(old, url=new_url))
        old_prefix, new_prefix = k.seen_prefix(old_url), k.seen_prefix(new_url)
        moved = {new_prefix + key[len(old_prefix) :]: t for key, t in self.f.scan(old_prefix)}
        if moved:
            for key, t in self.f.get_many(moved).items():
                moved[key] = max(moved[key], t)
            for key, t in moved.items():
                self.f.put(key, t)
            self.f.delete_prefix(old_prefix)
        for sub in self.feed_subs(old_url):
            self.delete_sub(sub.chat_id, old_url)
            if self.f.get(k.sub_key(sub.chat_id, new_url)) is None:
                self.put_sub(replace(sub, feed_url=new_url))
            rows = self.box.chat_rows(sub.chat_id)
            self.box.move(rows, lambda r: r["feed_url"] == old_url, "feed_url", new_url)

    def delete_feed_record(self, feed: Feed) -> None:
        self.f.delete(k.due_key(feed.next_poll, feed.url))
        self.f.delete(k.feed_key(feed.url))
        self.leases.pop(k.lease_key(feed.url), None)

    def sub(self, chat_id: int, url: str) -> Subscription | None:
        d = self.f.get(k.sub_key(chat_id, url))
        return None if d is None else codec.subscription_from_dict(d)

    def put_sub(self, sub: Subscription) -> None:
        self.f.put(k.sub_key(sub.chat_id, sub.feed_url), codec.subscription_to_dict(sub))
        self.f.put(k.fsub_key(sub.feed_url, sub.chat_id), sub.chat_id)

    def delete_sub(self, chat_id: int, url: str) -> None:
        self.f.delete(k.sub_key(chat_id, url))
        self.f.delete(k.fsub_key(url, chat_id))

    def feed_subs(self, url: str) -> list[Subscription]:
        chat_ids = [chat_id for _, chat_id in self.f.scan(k.fsub_prefix(url))]
        found = self.f.get_many(k.sub_key(chat_id, url) for chat_id in chat_ids)
        subs = [codec.subscription_from_dict(d) for d in found.values()]
        subs.sort(key=lambda s: (s.seq, s.chat_id))
        return subs

    def subscribers(self, url: str) -> tuple[list[Subscription], bool]:
        """The feed's subscriptions whose chat is active (or unknown), and
        whether anyone follows it at all."""
        return self.subscribers_of([url])[url]

    def chat(self, chat_id: int) -> Chat | None:
        d = self.f.get(k.chat_key(chat_id))
        return None if d is None else codec.chat_from_dict(d)

    def put_chat(self, chat: Chat) -> None:
        self.f.put(k.chat_key(chat.id), codec.chat_to_dict(chat))

    def subscribers_of(self, urls: Sequence[str]) -> dict[str, tuple[list[Subscription], bool]]:
        """``subscribers`` of many feeds, in a few statements."""
        found = self.f.scan_many([k.fsub_prefix(url) for url in dict.fromkeys(urls)])
        chats_of = {url: [c for _, c in found[k.fsub_prefix(url)]] for url in urls}
        subs = self.f.get_many(k.sub_key(c, url) for url, cs in chats_of.items() for c in cs)
        all_chats = {c for cs in chats_of.values() for c in cs}
        chats = self.f.get_many(k.chat_key(c) for c in all_chats)
        out: dict[str, tuple[list[Subscription], bool]] = {}
        for url, cs in chats_of.items():
            mine = [
                codec.subscription_from_dict(d)
                for c in cs
                if (d := subs.get(k.sub_key(c, url))) is not None
            ]
            mine.sort(key=lambda s: (s.seq, s.chat_id))
            active = [s for s in mine if chats.get(k.chat_key(s.chat_id), {}).get("active", True)]
            out[url] = (active, bool(mine))
        return out
