"""The store: every Store method on the sqlitedict backend, durability across
restarts and crashes, the cost of seen look-ups, and the codec."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import (
    Chat,
    ChatKind,
    Delivery,
    Entry,
    Feed,
    FeedStatus,
    Media,
    Style,
    Subscription,
)
from bot.store import SqliteStore, Store, codec, open_store
from bot.store.sqlite import TABLE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "feedbot.sqlite")


@pytest.fixture
def store(path: str) -> Iterator[SqliteStore]:
    s = SqliteStore(path)
    yield s
    s.close()


def reopen(store: SqliteStore) -> SqliteStore:
    store.close()
    return SqliteStore(store.path)


def rows(path: str, prefix: str) -> list[tuple[str, str]]:
    """What another connection sees committed in the file under ``prefix``."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            f'SELECT key, value FROM "{TABLE}" WHERE substr(key, 1, ?) = ? ORDER BY key',
            (len(prefix), prefix),
        ).fetchall()


def entry(n: int | str = 1, **kw: object) -> Entry:
    return Entry(id=f"id-{n}", title=f"Title {n}", link=f"https://example.com/{n}", **kw)


# -- chats -------------------------------------------------------------------
def test_chats(store: SqliteStore) -> None:
    assert isinstance(store, Store)
    assert store.get_chat(1) is None
    chat = Chat(id=-100123, kind=ChatKind.SUPERGROUP, title="Group", username="grp")
    store.put_chat(chat)
    assert store.get_chat(-100123) == chat
    chat.active = False
    store.put_chat(chat)
    store = reopen(store)
    assert store.get_chat(-100123) == Chat(-100123, ChatKind.SUPERGROUP, "Group", "grp", False)
    store.close()


# -- feeds -------------------------------------------------------------------
def test_feeds(store: SqliteStore) -> None:
    assert store.get_feed("https://a.example/feed") is None
    assert store.feeds() == []
    a = Feed(
        url="https://a.example/feed",
        title="A",
        etag='"x"',
        last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
        body_hash="abc",
        interval=600.0,
        next_poll=1.5,
        last_success=1000.0,
        last_error="timeout",
        error_count=3,
        failing_since=900.0,
        failure_notified=True,
        status=FeedStatus.GONE,
        recent_entry_times=[1.0, 2.0],
    )
    b = Feed(url="https://a.example/feed/b")
    store.put_feed(b)
    store.put_feed(a)
    assert store.get_feed(a.url) == a
    assert store.feeds() == [a, b]
    a.error_count = 0
    store.put_feed(a)
    store = reopen(store)
    assert store.get_feed(a.url) == a
    assert [f.url for f in store.feeds()] == [a.url, b.url]
    store.close()


def test_delete_feed_removes_its_seen_set_only(store: SqliteStore) -> None:
    urls = ["https://a.example/f", "https://a.example/f\x1fx", "https://a.example/f/"]
    for url in urls:
        store.put_feed(Feed(url=url))
        store.mark_seen(url, ["k1", "k2"], 10.0)
    store.delete_feed(urls[0])
    assert store.get_feed(urls[0]) is None
    assert store.seen(urls[0], ["k1", "k2"]) == set()
    for url in urls[1:]:
        assert store.get_feed(url) is not None
        assert store.seen(url, ["k1", "k2"]) == {"k1", "k2"}


# -- subscriptions -----------------------------------------------------------
def test_subscriptions(store: SqliteStore) -> None:
    s1 = Subscription(chat_id=1, feed_url="https://b.example/", created=20.0)
    s2 = Subscription(chat_id=1, feed_url="https://a.example/", created=10.0)
    s3 = Subscription(chat_id=1, feed_url="https://c.example/", created=20.0)
    s4 = Subscription(chat_id=2, feed_url="https://b.example/", created=5.0)
    s5 = Subscription(chat_id=11, feed_url="https://b.example/", created=5.0)
    for sub in (s1, s2, s3, s4, s5):
        assert store.add_subscription(sub) is True
    # Adding again changes nothing, even with another style.
    assert store.add_subscription(replace(s1, created=99.0, style=Style(silent=True))) is False
    assert store.get_subscription(1, s1.feed_url) == s1
    assert store.get_subscription(3, s1.feed_url) is None

    # Oldest first, then by URL; chat 1's listing never includes chat 11's.
    assert store.chat_subscriptions(1) == [s2, s1, s3]
    assert store.chat_subscriptions(11) == [s5]
    assert store.chat_subscriptions(99) == []
    assert sorted(s.chat_id for s in store.feed_subscriptions("https://b.example/")) == [1, 2, 11]
    assert store.feed_subscriptions("https://nobody.example/") == []

    styled = replace(s1, style=Style(summary="full", media=False, silent=True))
    store.put_subscription(styled)
    store = reopen(store)
    assert store.get_subscription(1, s1.feed_url) == styled
    assert store.feed_subscriptions(s1.feed_url)[-1] == styled

    assert store.remove_subscription(1, s1.feed_url) is True
    assert store.remove_subscription(1, s1.feed_url) is False
    assert store.get_subscription(1, s1.feed_url) is None
    assert store.chat_subscriptions(1) == [s2, s3]
    assert sorted(s.chat_id for s in store.feed_subscriptions(s1.feed_url)) == [2, 11]
    store.close()


def test_remove_subscription_drops_that_chats_pending_deliveries_of_the_feed(
    store: SqliteStore,
) -> None:
    a, b = "https://a.example/", "https://b.example/"
    for chat_id in (1, 2):
        for url in (a, b):
            store.add_subscription(Subscription(chat_id, url, 1.0))
    store.enqueue(a, entry(1), [1, 2])
    store.enqueue(b, entry(2), [1, 2])
    store.remove_subscription(1, a)
    assert [(d.chat_id, d.feed_url) for d in store.pending()] == [(2, a), (1, b), (2, b)]


# -- uncommitted writes ------------------------------------------------------
def test_reads_see_uncommitted_writes_other_connections_do_not(store: SqliteStore) -> None:
    store.put_chat(Chat(7, ChatKind.PRIVATE))
    store.add_subscription(Subscription(7, "https://a.example/", 1.0))
    store.mark_seen("https://a.example/", ["k"], 1.0)
    store.enqueue("https://a.example/", entry(), [7])
    # The same connection sees its pending writes, by key and by range.
    assert store.get_chat(7) == Chat(7, ChatKind.PRIVATE)
    assert len(store.chat_subscriptions(7)) == 1
    assert len(store.feed_subscriptions("https://a.example/")) == 1
    assert store.seen("https://a.example/", ["k"]) == {"k"}
    assert len(store.pending()) == 1
    # Nothing is committed yet.
    assert rows(store.path, "chat:") == []
    store.commit()
    assert rows(store.path, "chat:") != []


def test_close_commits_and_reopen_keeps_everything(path: str) -> None:
    s = SqliteStore(path)
    s.put_chat(Chat(1, ChatKind.GROUP, "g"))
    s.put_feed(Feed(url="https://a.example/"))
    s.add_subscription(Subscription(1, "https://a.example/", 3.0))
    s.mark_seen("https://a.example/", ["x"], 5.0)
    [d] = s.enqueue("https://a.example/", entry(), [1])
    s.close()
    s.close()  # idempotent
    s = SqliteStore(path)
    assert s.get_chat(1) == Chat(1, ChatKind.GROUP, "g")
    assert s.get_feed("https://a.example/") == Feed(url="https://a.example/")
    assert s.chat_subscriptions(1) == [Subscription(1, "https://a.example/", 3.0)]
    assert s.seen("https://a.example/", ["x", "y"]) == {"x"}
    assert s.pending() == [d]
    s.close()
    with pytest.raises(RuntimeError):
        s.get_chat(1)


def test_a_failed_write_rolls_back_the_whole_commit(store: SqliteStore) -> None:
    store.put_chat(Chat(1, ChatKind.PRIVATE))
    store.commit()
    store.put_chat(Chat(2, ChatKind.PRIVATE))
    store._execute('INSERT INTO "no such table" VALUES (1)')
    store.put_chat(Chat(3, ChatKind.PRIVATE))
    with pytest.raises(sqlite3.OperationalError):
        store.commit()
    assert store.get_chat(2) is None
    assert store.get_chat(3) is None
    # The store carries on.
    store.put_chat(Chat(4, ChatKind.PRIVATE))
    store = reopen(store)
    assert [store.get_chat(i) is not None for i in (1, 2, 3, 4)] == [True, False, False, True]
    store.close()


# -- crashes -----------------------------------------------------------------
CRASH_SCRIPT = """
import os, signal, sys
from bot.models import Chat, ChatKind, Entry, Subscription
from bot.store import open_store

s = open_store(sys.argv[1])
s.put_chat(Chat(1, ChatKind.PRIVATE, "committed"))
s.add_subscription(Subscription(1, "https://a.example/", 1.0))
s.mark_seen("https://a.example/", ["old"], 1.0)
s.enqueue("https://a.example/", Entry(id="e1", title="one"), [1])
s.commit()
# A poll that crashes before its commit: none of it may survive.
s.put_chat(Chat(1, ChatKind.PRIVATE, "uncommitted"))
s.put_chat(Chat(2, ChatKind.PRIVATE))
s.mark_seen("https://a.example/", ["new-%d" % i for i in range(2000)], 2.0)
s.enqueue("https://a.example/", Entry(id="e2", title="two"), [1])
s.remove_subscription(1, "https://a.example/")
s.get_chat(2)  # make sure the writes reached SQLite before dying
if sys.argv[2] == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
os._exit(3)
"""


@pytest.mark.parametrize("how", ["sigkill", "_exit"])
def test_crash_keeps_committed_and_loses_uncommitted(tmp_path: Path, how: str) -> None:
    path = str(tmp_path / "data" / "feedbot.sqlite")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, path, how], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == (-9 if how == "sigkill" else 3), proc.stderr.decode()
    with SqliteStore(path) as s:
        assert s.get_chat(1) == Chat(1, ChatKind.PRIVATE, "committed")
        assert s.get_chat(2) is None
        assert s.get_subscription(1, "https://a.example/") is not None
        assert s.seen("https://a.example/", ["old", "new-0", "new-1999"]) == {"old"}
        [d] = s.pending()
        assert (d.seq, d.entry.id) == (1, "e1")
        # The lost enqueue's seq is not reused in a way that reorders anything.
        [d2] = s.enqueue("https://a.example/", Entry(id="e3", title="three"), [1])
        assert d2.seq > d.seq


# -- seen entries ------------------------------------------------------------
def test_seen_mark_and_refresh(store: SqliteStore) -> None:
    url = "https://a.example/"
    assert store.seen(url, []) == set()
    assert store.seen(url, ["a", "b"]) == set()
    store.mark_seen(url, ["a", "b", "a"], 10.0)
    assert store.seen(url, ["a", "b", "c"]) == {"a", "b"}
    assert store.seen("https://other.example/", ["a"]) == set()
    store.mark_seen(url, ["a"], 50.0)  # refresh
    assert store.prune_seen(url, keep=[], older_than=20.0) == 1
    assert store.seen(url, ["a", "b"]) == {"a"}


def test_prune_never_removes_kept_keys(store: SqliteStore) -> None:
    url = "https://a.example/"
    store.mark_seen(url, [f"k{i}" for i in range(100)], 1.0)
    store.mark_seen(url, ["fresh"], 100.0)
    store.mark_seen("https://other.example/", ["k1"], 1.0)
    keep = [f"k{i}" for i in range(0, 100, 10)] + ["not-even-seen"]
    assert store.prune_seen(url, keep, older_than=50.0) == 90
    assert store.seen(url, [f"k{i}" for i in range(100)]) == set(keep[:-1])
    assert store.seen(url, ["fresh"]) == {"fresh"}
    assert store.seen("https://other.example/", ["k1"]) == {"k1"}
    assert store.prune_seen(url, keep, older_than=50.0) == 0
    # Exactly ``older_than`` is not older.
    assert store.prune_seen(url, [], older_than=1.0) == 0
    assert store.prune_seen(url, [], older_than=1.0001) == 10


def test_listings_reach_keys_beyond_the_basic_plane(store: SqliteStore) -> None:
    # A range bound of prefix + "\uffff" would miss these.
    url, keys = "https://a.example/", ["😀", "\U0010ffff", "\uffff\uffff", "\uffff😀"]
    store.mark_seen(url, keys, 1.0)
    store.mark_seen(url + "😀", keys, 1.0)
    assert store.prune_seen(url, [], older_than=2.0) == 4
    assert store.seen(url + "😀", keys) == set(keys)
    store.add_subscription(Subscription(1, "https://😀.example/\U0010ffff", 1.0))
    assert len(store.chat_subscriptions(1)) == 1
    assert len(store.feed_subscriptions("https://😀.example/\U0010ffff")) == 1


class SqlRecorder:
    """Records every statement the store sends to SQLite."""

    def __init__(self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[tuple[str, tuple[object, ...]]] = []
        select, execute = store._select, store._execute

        def rec_select(sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
            self.statements.append((sql, tuple(args)))
            return select(sql, args)

        def rec_execute(sql: str, args: tuple[object, ...] = ()) -> None:
            self.statements.append((sql, tuple(args)))
            execute(sql, args)

        monkeypatch.setattr(store, "_select", rec_select)
        monkeypatch.setattr(store, "_execute", rec_execute)


def vm_steps(path: str, sql: str, args: tuple[object, ...]) -> int:
    """SQLite virtual-machine instructions a statement takes on the file."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with sqlite3.connect(path) as conn:
        conn.set_progress_handler(count, 1)
        conn.execute(sql, args).fetchall()
    return steps


def test_seen_lookups_do_not_grow_with_history(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, other = "https://big.example/feed", "https://small.example/feed"
    store.mark_seen(url, [f"https://big.example/post/{i}" for i in range(20_000)], 1.0)
    store.mark_seen(other, [f"https://big.example/post/{i}" for i in range(20)], 1.0)
    store.commit()
    # One row per key, not one growing value per feed.
    assert len(rows(store.path, "seen:")) == 20_020

    recorder = SqlRecorder(store, monkeypatch)
    keys = [f"https://big.example/post/{i}" for i in range(19_990, 20_010)]
    assert store.seen(url, keys) == set(keys[:10])
    big = list(recorder.statements)
    recorder.statements.clear()
    assert store.seen(other, keys) == set()
    small = list(recorder.statements)

    assert len(big) == 1  # one statement for the 20 keys
    with sqlite3.connect(store.path) as conn:
        for sql, args in big:
            plan = " ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            assert "SEARCH" in plan and "SCAN" not in plan, plan
    # The same work for a feed of 20,000 keys as for a feed of 20, while a
    # scan of the table would take tens of thousands of steps.
    steps_big = sum(vm_steps(store.path, sql, args) for sql, args in big)
    steps_small = sum(vm_steps(store.path, sql, args) for sql, args in small)
    full_scan = vm_steps(store.path, f'SELECT key FROM "{TABLE}" WHERE value = ?', ("x",))
    assert full_scan > 20_000
    assert steps_big < 1_000
    assert steps_big <= steps_small + 50

    # Marking one more key writes one small row.
    recorder.statements.clear()
    store.mark_seen(url, ["one more"], 2.0)
    [(sql, args)] = recorder.statements
    assert sql.startswith("REPLACE") and len(str(args)) < 200


# -- outbox ------------------------------------------------------------------
def test_outbox_order_and_retry_state(store: SqliteStore) -> None:
    a, b = "https://a.example/", "https://b.example/"
    assert store.pending() == []
    assert store.enqueue(a, entry(1), []) == []
    d1 = store.enqueue(a, entry(1), [10, 20, 10])
    d2 = store.enqueue(b, entry(2), [20])
    assert [(d.seq, d.chat_id, d.feed_url, d.entry) for d in d1 + d2] == [
        (1, 10, a, entry(1)),
        (2, 20, a, entry(1)),
        (3, 20, b, entry(2)),
    ]
    assert store.pending() == d1 + d2
    retry = replace(d1[0], attempts=2, not_before=123.5)
    store.update_delivery(retry)
    moved = replace(d1[1], chat_id=-100999)
    store.update_delivery(moved)
    store = reopen(store)
    assert store.pending() == [retry, moved, d2[0]]
    store.complete(retry)
    store.complete(retry)  # twice is harmless
    store.update_delivery(replace(retry, attempts=5))  # completed: nothing to update
    assert store.pending() == [moved, d2[0]]
    store.close()


def test_pending_for_chat_reads_only_that_chats_rows(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.enqueue("https://a.example/", entry(1), range(2, 2000))
    mine = store.enqueue("https://a.example/", entry(2), [1, 2])[:1]
    store.enqueue("https://a.example/", entry(3), range(2, 200))
    store.commit()
    returned = 0
    select = store._select

    def counting(sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        nonlocal returned
        result = select(sql, args)
        returned += len(result)
        return result

    monkeypatch.setattr(store, "_select", counting)
    assert store.pending_for_chat(1) == mine
    assert returned <= 3  # its index row, its outbox row, its entry
    assert store.pending_for_chat(-5) == []


def test_entry_blob_stored_once_and_dropped_with_last_delivery(store: SqliteStore) -> None:
    url = "https://a.example/"
    e = entry(1, html="<p>" + "x" * 10_000 + "</p>")
    deliveries = store.enqueue(url, e, range(500))
    store.commit()
    assert len(rows(store.path, "entry:")) == 1
    assert len(rows(store.path, "outbox:")) == 500
    assert max(len(v) for _, v in rows(store.path, "outbox:")) < 300
    # The same entry queued again later shares the blob.
    later = store.enqueue(url, e, [1000])
    for d in deliveries[:-1]:
        store.complete(d)
    store.commit()
    assert len(rows(store.path, "entry:")) == 1
    store.remove_subscription(1000, url)  # no such subscription: nothing dropped
    store.complete(deliveries[-1])
    store.commit()
    assert len(rows(store.path, "entry:")) == 1
    assert store.pending() == later
    store.complete(later[0])
    store.commit()
    assert rows(store.path, "entry:") == []
    assert rows(store.path, "eref:") == []
    assert rows(store.path, "outbox:") == []


def test_remove_subscription_releases_entry_blobs(store: SqliteStore) -> None:
    url = "https://a.example/"
    store.add_subscription(Subscription(1, url, 1.0))
    store.enqueue(url, entry(1), [1])
    store.remove_subscription(1, url)
    store.commit()
    assert rows(store.path, "entry:") == []
    assert rows(store.path, "eref:") == []


def test_seq_is_monotonic_across_restarts(store: SqliteStore) -> None:
    [d] = store.enqueue("https://a.example/", entry(), [1])
    store.complete(d)
    store = reopen(store)
    assert store.pending() == []
    [d2] = store.enqueue("https://a.example/", entry(), [1])
    assert d2.seq == d.seq + 1
    store.close()


def test_seq_recovers_from_outbox_when_meta_is_missing(store: SqliteStore) -> None:
    store.enqueue("https://a.example/", entry(), [1, 2, 3])
    store._delete("meta:seq")
    store = reopen(store)
    [d] = store.enqueue("https://a.example/", entry(), [4])
    assert d.seq == 4
    store.close()


# -- migrate / move ----------------------------------------------------------
def test_migrate_chat(store: SqliteStore) -> None:
    a, b, c = "https://a.example/", "https://b.example/", "https://c.example/"
    store.put_chat(Chat(-1, ChatKind.GROUP, "Group"))
    store.put_chat(Chat(5, ChatKind.PRIVATE))
    store.add_subscription(Subscription(-1, a, 1.0, Style(silent=True)))
    store.add_subscription(Subscription(-1, b, 2.0))
    # The new chat already follows b with its own style: that one stays.
    store.add_subscription(Subscription(-100, b, 3.0, Style(media=False)))
    store.add_subscription(Subscription(5, a, 1.0))
    store.add_subscription(Subscription(5, c, 1.0))
    d_a = store.enqueue(a, entry(1), [-1, 5])
    store.enqueue(b, entry(2), [-100])
    d_b = store.enqueue(b, entry(2), [-1])  # same entry, already queued for -100
    d_c = store.enqueue(c, entry(3), [5])

    store.migrate_chat(-1, -100)
    store.migrate_chat(-100, -100)  # no-op
    store = reopen(store)
    assert store.get_chat(-1) is None
    assert store.get_chat(-100) == Chat(-100, ChatKind.SUPERGROUP, "Group")
    assert store.chat_subscriptions(-1) == []
    assert store.chat_subscriptions(-100) == [
        Subscription(-100, a, 1.0, Style(silent=True)),
        Subscription(-100, b, 3.0, Style(media=False)),
    ]
    assert sorted(s.chat_id for s in store.feed_subscriptions(a)) == [-100, 5]
    assert [s.chat_id for s in store.feed_subscriptions(b)] == [-100]
    assert [(d.seq, d.chat_id, d.feed_url) for d in store.pending()] == [
        (d_a[0].seq, -100, a),
        (d_a[1].seq, 5, a),
        (d_b[0].seq - 1, -100, b),
        (d_c[0].seq, 5, c),
    ]
    store.close()


def test_migrate_chat_keeps_an_existing_new_chat_record(store: SqliteStore) -> None:
    store.put_chat(Chat(-1, ChatKind.GROUP, "old title"))
    store.put_chat(Chat(-100, ChatKind.SUPERGROUP, "new title"))
    store.migrate_chat(-1, -100)
    assert store.get_chat(-1) is None
    assert store.get_chat(-100) == Chat(-100, ChatKind.SUPERGROUP, "new title")


def test_move_feed(store: SqliteStore) -> None:
    old, new = "http://a.example/rss", "https://a.example/feed"
    store.put_feed(Feed(url=old, title="A", etag="e", error_count=2))
    store.add_subscription(Subscription(1, old, 1.0, Style(summary="none")))
    store.mark_seen(old, ["k1", "k2"], 5.0)
    [d] = store.enqueue(old, entry(1), [1])

    store.move_feed(old, new)
    store.move_feed(new, new)  # no-op
    store = reopen(store)
    assert store.get_feed(old) is None
    assert store.get_feed(new) == Feed(url=new, title="A", etag="e", error_count=2)
    assert store.seen(old, ["k1", "k2"]) == set()
    assert store.seen(new, ["k1", "k2"]) == {"k1", "k2"}
    assert store.feed_subscriptions(old) == []
    assert store.chat_subscriptions(1) == [Subscription(1, new, 1.0, Style(summary="none"))]
    assert store.pending() == [replace(d, feed_url=new)]
    store.close()


def test_move_feed_merges_into_an_existing_feed(store: SqliteStore) -> None:
    old, new = "https://old.example/", "https://new.example/"
    store.put_feed(Feed(url=old, title="Old", link="https://old.example/home", error_count=5))
    store.put_feed(Feed(url=new, next_poll=42.0))
    store.add_subscription(Subscription(1, old, 1.0, Style(silent=True)))
    store.add_subscription(Subscription(2, old, 2.0))
    store.add_subscription(Subscription(2, new, 3.0, Style(media=False)))  # already follows
    store.add_subscription(Subscription(3, new, 4.0))
    store.mark_seen(old, ["both", "old-only"], 10.0)
    store.mark_seen(new, ["both"], 5.0)
    store.mark_seen(new, ["new-only"], 20.0)
    store.enqueue(new, entry(1), [2])
    store.enqueue(old, entry(1), [1, 2])  # chat 2 already has entry 1 of the new feed
    store.enqueue(old, entry(2), [2])

    store.move_feed(old, new)
    assert store.feeds() == [
        Feed(url=new, title="Old", link="https://old.example/home", next_poll=42.0)
    ]
    assert store.seen(new, ["both", "old-only", "new-only"]) == {"both", "old-only", "new-only"}
    # Merged seen times keep the latest mark.
    assert store.prune_seen(new, [], older_than=10.5) == 2
    assert store.seen(new, ["both", "old-only", "new-only"]) == {"new-only"}
    assert store.feed_subscriptions(new) == [
        Subscription(1, new, 1.0, Style(silent=True)),
        Subscription(2, new, 3.0, Style(media=False)),
        Subscription(3, new, 4.0),
    ]
    assert store.chat_subscriptions(2) == [Subscription(2, new, 3.0, Style(media=False))]
    assert [(d.seq, d.chat_id, d.feed_url, d.entry.id) for d in store.pending()] == [
        (1, 2, new, "id-1"),
        (2, 1, new, "id-1"),
        (4, 2, new, "id-2"),
    ]
    store.commit()
    assert len(rows(store.path, "entry:")) == 2


def test_move_feed_without_a_feed_record_still_moves_the_rest(store: SqliteStore) -> None:
    store.add_subscription(Subscription(1, "https://old.example/", 1.0))
    store.move_feed("https://old.example/", "https://new.example/")
    assert store.get_feed("https://new.example/") is None
    assert [s.feed_url for s in store.chat_subscriptions(1)] == ["https://new.example/"]


# -- open_store --------------------------------------------------------------
def test_open_store_creates_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "feedbot.sqlite"
    s = open_store(str(path))
    assert isinstance(s, SqliteStore)
    s.put_chat(Chat(1, ChatKind.PRIVATE))
    s.close()
    assert path.exists()
    s = open_store(str(path))
    assert s.get_chat(1) is not None
    s.close()


def test_values_are_json_not_pickle(store: SqliteStore) -> None:
    store.put_chat(Chat(1, ChatKind.PRIVATE, "ü"))
    store.commit()
    [(_, value)] = rows(store.path, "chat:")
    assert json.loads(value)["title"] == "ü"


# -- open-ended inputs -------------------------------------------------------
ODD = st.sampled_from(["\x1f", "\x1e", "\x00", "😀", "\uffff", "\U0010ffff", "\ud800", ":", "/"])
odd_text = st.text(st.characters(exclude_categories=()) | ODD, max_size=12)
#: Each example opens a fresh store (from the fresh_store factory fixture).
store_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def fresh_store() -> Iterator[object]:
    """A factory of new stores, one per hypothesis example."""

    def make() -> SqliteStore:
        return SqliteStore(os.path.join(tempfile.mkdtemp(dir=tmpdir), "s.sqlite"))

    with tempfile.TemporaryDirectory() as tmpdir:
        yield make


@store_settings
@given(
    urls=st.lists(odd_text, min_size=2, max_size=4, unique=True),
    keys=st.lists(odd_text, max_size=8, unique=True),
    data=st.data(),
)
def test_seen_sets_never_mix_whatever_the_characters(fresh_store, urls, keys, data) -> None:
    with fresh_store() as s:
        marked = {
            url: data.draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
            for url in urls
        }
        for url, ks in marked.items():
            s.mark_seen(url, ks, 1.0)
            s.put_feed(Feed(url=url))
        for url, ks in marked.items():
            assert s.seen(url, keys) == set(ks)
        gone, *rest = urls
        s.delete_feed(gone)
        assert s.seen(gone, keys) == set()
        assert s.get_feed(gone) is None
        kept = marked[rest[0]][:1]
        assert s.prune_seen(rest[0], kept, older_than=2.0) == len(marked[rest[0]]) - len(kept)
        assert s.seen(rest[0], keys) == set(kept)
        for url in rest[1:]:
            assert s.seen(url, keys) == set(marked[url])
        assert sorted(f.url for f in s.feeds()) == sorted(rest)


@store_settings
@given(
    subs=st.lists(
        st.tuples(st.integers(-(10**13), 10**13), odd_text, st.floats(0, 1e10)),
        max_size=10,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_subscription_listings_whatever_the_urls(fresh_store, subs) -> None:
    with fresh_store() as s:
        for chat_id, url, created in subs:
            assert s.add_subscription(Subscription(chat_id, url, created))
        for chat_id in {c for c, _, _ in subs}:
            mine = sorted((cr, u) for c, u, cr in subs if c == chat_id)
            assert [(x.created, x.feed_url) for x in s.chat_subscriptions(chat_id)] == mine
        for url in {u for _, u, _ in subs}:
            theirs = sorted(c for c, u, _ in subs if u == url)
            assert sorted(x.chat_id for x in s.feed_subscriptions(url)) == theirs


@store_settings
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["enqueue", "complete", "retry", "rechat", "migrate", "unsubscribe"]),
            st.integers(0, 3),
        ),
        max_size=25,
    )
)
def test_outbox_matches_a_model(fresh_store, ops) -> None:
    """Against a plain list: order (overall and per chat), retry state, chat
    changes, the per-chat index and entry-blob cleanup."""
    url = "https://a.example/"
    with fresh_store() as s:
        subscribed = set(range(-4, 4))
        for chat_id in subscribed:
            s.add_subscription(Subscription(chat_id, url, 1.0))
        model: list[Delivery] = []
        for op, n in ops:
            if op == "enqueue":
                model += s.enqueue(url, entry(n), range(n + 1))
            elif op == "migrate":  # chat n becomes chat -n-1; the earlier duplicate stays
                s.migrate_chat(n, -n - 1)
                if n in subscribed:
                    subscribed.remove(n)
                    subscribed.add(-n - 1)
                kept: set[tuple[int, str]] = set()
                migrated = []
                for d in sorted(model, key=lambda d: d.seq):
                    if d.chat_id == n:
                        d = replace(d, chat_id=-n - 1)
                    if d.chat_id == -n - 1 and (d.chat_id, d.entry.id) in kept:
                        continue
                    kept.add((d.chat_id, d.entry.id))
                    migrated.append(d)
                model = migrated
            elif op == "unsubscribe":
                assert s.remove_subscription(n, url) == (n in subscribed)
                if n in subscribed:
                    subscribed.remove(n)
                    model = [d for d in model if d.chat_id != n]
            elif model:
                d = model[n % len(model)]
                if op == "complete":
                    s.complete(d)
                    model.remove(d)
                else:
                    new = replace(d, attempts=d.attempts + 1, not_before=float(n))
                    if op == "rechat":
                        new = replace(new, chat_id=(d.chat_id + 1) % 4)
                    s.update_delivery(new)
                    model[model.index(d)] = new
            assert s.pending() == model
            for chat_id in range(-4, 4):
                assert s.pending_for_chat(chat_id) == [d for d in model if d.chat_id == chat_id]
        s.commit()
        index = {k.removeprefix("cbox:") for k, _ in rows(s.path, "cbox:")}
        assert index == {f"{d.chat_id}\x1f{d.seq:020d}" for d in model}
        live = {codec.entry_digest(d.entry) for d in model}
        assert {k.removeprefix("entry:") for k, _ in rows(s.path, "entry:")} == live
        refs = {k.removeprefix("eref:"): int(v) for k, v in rows(s.path, "eref:")}
        assert refs == {h: sum(codec.entry_digest(d.entry) == h for d in model) for h in live}
        s.close()
        with SqliteStore(s.path) as again:  # nothing came from a cache
            assert again.pending() == model


# -- codec -------------------------------------------------------------------
aware_or_naive = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.none()
    | st.just(UTC)
    | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))),
)
medias = st.builds(
    Media,
    url=odd_text,
    kind=st.sampled_from(["image", "video", "audio", "document"]),
    mime_type=st.none() | odd_text,
    length=st.none() | st.integers(-(2**63), 2**63),
    source=odd_text,
)
entries = st.builds(
    Entry,
    id=odd_text,
    title=odd_text,
    link=st.none() | odd_text,
    html=odd_text,
    base_url=st.none() | odd_text,
    author=st.none() | odd_text,
    categories=st.lists(odd_text, max_size=3).map(tuple),
    published=st.none() | aware_or_naive,
    updated=st.none() | aware_or_naive,
    media=st.lists(medias, max_size=3).map(tuple),
)
floats = st.floats(allow_nan=False)
feeds = st.builds(
    Feed,
    url=odd_text,
    title=odd_text,
    link=st.none() | odd_text,
    etag=st.none() | odd_text,
    last_modified=st.none() | odd_text,
    body_hash=st.none() | odd_text,
    interval=st.none() | floats,
    next_poll=floats,
    last_success=st.none() | floats,
    last_error=st.none() | odd_text,
    error_count=st.integers(0, 10**6),
    failing_since=st.none() | floats,
    failure_notified=st.booleans(),
    status=st.sampled_from(FeedStatus),
    recent_entry_times=st.lists(floats, max_size=5),
)
styles = st.builds(
    Style,
    summary=st.sampled_from(["none", "short", "full"]),
    media=st.booleans(),
    link_preview=st.booleans(),
    silent=st.booleans(),
    show_author=st.booleans(),
    show_feed=st.booleans(),
    show_tags=st.booleans(),
)
subscriptions = st.builds(
    Subscription, chat_id=st.integers(), feed_url=odd_text, created=floats, style=styles
)
chats = st.builds(
    Chat,
    id=st.integers(),
    kind=st.sampled_from(ChatKind),
    title=odd_text,
    username=st.none() | odd_text,
    active=st.booleans(),
)


def through_json(d: dict) -> dict:
    return json.loads(json.dumps(d))


@given(entries)
def test_codec_round_trips_any_entry(e: Entry) -> None:
    back = codec.entry_from_dict(through_json(codec.entry_to_dict(e)))
    assert back == e
    for a, b in ((e.published, back.published), (e.updated, back.updated)):
        assert (a and a.utcoffset()) == (b and b.utcoffset())
    assert codec.entry_digest(back) == codec.entry_digest(e)


@given(feeds)
def test_codec_round_trips_any_feed(f: Feed) -> None:
    assert codec.feed_from_dict(through_json(codec.feed_to_dict(f))) == f


@given(subscriptions)
def test_codec_round_trips_any_subscription(s: Subscription) -> None:
    assert codec.subscription_from_dict(through_json(codec.subscription_to_dict(s))) == s


@given(chats)
def test_codec_round_trips_any_chat(c: Chat) -> None:
    assert codec.chat_from_dict(through_json(codec.chat_to_dict(c))) == c


def test_codec_tolerates_missing_and_unknown_keys() -> None:
    assert codec.feed_from_dict({"url": "u", "future": 1}) == Feed(url="u")
    assert codec.entry_from_dict({"id": "x", "extra": []}) == Entry(id="x", title="")
    assert codec.subscription_from_dict({"chat_id": 1, "feed_url": "u", "created": 2}) == (
        Subscription(1, "u", 2.0)
    )
    assert codec.chat_from_dict({"id": 1, "kind": "channel"}) == Chat(1, ChatKind.CHANNEL)
    assert codec.style_from_dict({"silent": True, "new_option": 1}) == Style(silent=True)


def test_entry_digest_depends_on_content() -> None:
    assert codec.entry_digest(entry(1)) == codec.entry_digest(entry(1))
    assert codec.entry_digest(entry(1)) != codec.entry_digest(entry(1, html="x"))
    tz = timezone(timedelta(hours=2))
    a = entry(1, published=datetime(2024, 1, 1, 12, tzinfo=tz))
    assert codec.entry_from_dict(codec.entry_to_dict(a)).published.tzinfo == tz  # type: ignore[union-attr]
