"""What is particular to the embedded file backend: its lock across real
processes, faults of the file (full, read-only, corrupt, emptied), a worker
thread that dies, kills mid-poll, the key layout's costs, and upgrading a
store written before the due index existed. The behaviour every backend
shares is in test_store_conformance.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from queue import Queue
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import Chat, ChatKind, Delivery, Entry, Feed, FeedStatus, Notice, Subscription
from bot.plan import Enqueue, PollPlan, Tell
from bot.store import Store, StoreError, codec
from bot.store import sqlite_keys as keys
from bot.store.sqlite import TABLE, SqliteStore

REPO = Path(__file__).resolve().parent.parent
URL = "https://a.example/feed"
T = TypeVar("T")


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "data" / "feedbot.sqlite")


@pytest.fixture
async def store(path: str) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(path)
    await s.open()
    yield s
    await s.close()


def rows(path: str, prefix: str) -> list[tuple[str, str]]:
    """What another connection sees committed in the file under ``prefix``."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            f'SELECT key, value FROM "{TABLE}" WHERE key >= ? AND key < ? ORDER BY key',
            (prefix, keys.upper(prefix)),
        ).fetchall()


def entry(n: int | str, **kw: Any) -> Entry:
    return Entry(id=f"id-{n}", title=f"Title {n}", link=f"https://example.com/{n}", **kw)


async def follow(store: Store, chat_id: int, url: str = URL, **feed: Any) -> None:
    sub = Subscription(chat_id, url, 1.0)
    await store.subscribe(Chat(chat_id, ChatKind.PRIVATE), sub, new_feed=Feed(url=url, **feed))


def one_line(exc: pytest.ExceptionInfo[StoreError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.strip() == text and len(text) < 300, text
    return text


# -- the lock ----------------------------------------------------------------
HOLDER = """
import asyncio, sys
from bot.store.sqlite import SqliteStore

async def main():
    s = SqliteStore(sys.argv[1])
    await s.open()
    print("open", flush=True)
    sys.stdin.readline()
    await s.close()

asyncio.run(main())
"""


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_a_second_process_is_refused_with_one_line(path: str) -> None:
    holder = spawn(HOLDER, path)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        second = SqliteStore(path)
        with pytest.raises(StoreError) as exc:
            await second.open()
        assert one_line(exc) == (f"{path} is in use by another feedbot process (pid {holder.pid})")
        # Nothing was opened, so nothing needs closing, and the holder is fine.
        await second.close()
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0, holder.stderr
    # The lock went with the process: now the file opens.
    async with SqliteStore(path) as s:
        assert await s.get_chat(1) is None


async def test_a_killed_holder_leaves_no_lock_behind(path: str) -> None:
    holder = spawn(HOLDER, path)
    assert holder.stdout is not None and holder.stdout.readline() == "open\n"
    holder.kill()
    holder.communicate(timeout=30)
    async with SqliteStore(path) as s:
        assert await s.pending() == []


async def test_the_same_file_twice_in_one_process_is_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="in use by another feedbot process"):
        await SqliteStore(store.path).open()
    assert await store.get_chat(1) is None  # the first one is untouched


async def test_open_creates_the_directory_and_clears_dead_leases(path: str) -> None:
    async with SqliteStore(path) as s:
        await follow(s, 1)
        assert len(await s.claim_due_feeds("dead", 10.0, 10, 1e9)) == 1
    assert os.path.isdir(os.path.dirname(path))
    # One process per file: a lease found at open belongs to a dead process.
    async with SqliteStore(path) as s:
        [claim] = await s.claim_due_feeds("alive", 10.0, 10, 60.0)
        assert claim.feed.url == URL
        assert await s.record_polls([PollPlan(URL, Feed(URL, next_poll=99.0), 10.0)], "dead") == [
            False
        ]


# -- faults of the file ------------------------------------------------------
async def test_an_emptied_file_is_refused_not_started_empty(path: str) -> None:
    async with SqliteStore(path) as s:
        await follow(s, 1)
    with open(path, "wb"):
        pass  # truncated to 0 bytes
    for ext in ("-wal", "-shm"):
        if os.path.exists(path + ext):
            os.remove(path + ext)
    with pytest.raises(StoreError) as exc:
        await SqliteStore(path).open()
    assert "empty (0 bytes)" in one_line(exc) and "refusing to start" in str(exc.value)
    assert os.path.getsize(path) == 0  # left as it was, for the operator
    # The lock was released: the operator's next try is not "in use".
    with pytest.raises(StoreError, match="empty"):
        await SqliteStore(path).open()


@pytest.mark.parametrize("damage", ["garbage", "half", "middle", "other_database"])
async def test_a_corrupt_file_gives_one_line(path: str, damage: str) -> None:
    async with SqliteStore(path) as s:
        for i in range(50):
            await follow(s, i + 1, f"https://{i}.example/", title="x" * 500)
    with open(path, "r+b") as f:
        size = f.seek(0, 2)
        if damage == "garbage":
            f.seek(0)
            f.write(os.urandom(size))
        elif damage == "half":
            f.truncate(size // 2)
        elif damage == "middle":  # the first page intact: it opens
            f.seek(4096)
            f.write(os.urandom(size - 4096))
    if damage == "other_database":
        os.remove(path)
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (x)")
    store = SqliteStore(path)
    try:
        with pytest.raises(StoreError) as exc:
            await store.open()
            # A file damaged past its first pages opens, and fails on reading.
            for i in range(50):
                await store.get_feed(f"https://{i}.example/")
            await store.stats()
        text = one_line(exc)
        assert text.startswith(path)
    finally:
        await store.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
async def test_a_read_only_file_is_refused_at_open(path: str) -> None:
    async with SqliteStore(path) as s:
        await follow(s, 1)
    os.chmod(path, 0o444)
    try:
        with pytest.raises(StoreError) as exc:
            await SqliteStore(path).open()
        assert "readonly" in one_line(exc)
    finally:
        os.chmod(path, 0o644)


async def test_a_file_that_turns_read_only_fails_each_write_with_one_line(
    store: SqliteStore,
) -> None:
    # As SQLite answers for a file made read-only under a running bot
    # (SQLITE_READONLY), whoever runs the test.
    await follow(store, 1)
    store.f.select("PRAGMA query_only = 1")
    with pytest.raises(StoreError) as exc:
        await store.save_chat(Chat(2, ChatKind.PRIVATE))
    assert "readonly" in one_line(exc) and "permissions" in str(exc.value)
    assert await store.get_chat(1) is not None  # reads still work
    store.f.select("PRAGMA query_only = 0")
    await store.save_chat(Chat(2, ChatKind.PRIVATE))
    assert await store.get_chat(2) is not None


def plan_with(n: int, size: int) -> PollPlan:
    return PollPlan(
        URL,
        Feed(URL, next_poll=1000.0 + n),
        100.0,
        seen=tuple(f"key-{n}-{i}-" + "x" * 50 for i in range(size)),
        enqueue=(Enqueue(entry(n), (1,)),),
        tell=(Tell(Notice("feed_back"), (1,)),),
    )


async def test_a_full_disk_rolls_the_poll_back_and_recovers_when_space_is_freed(
    store: SqliteStore,
) -> None:
    await follow(store, 1)
    await store.claim_due_feeds("me", 10.0, 10, 60.0)
    [(pages,)] = store.f.select("PRAGMA page_count")
    # SQLite answers SQLITE_FULL past max_page_count, as on a full disk.
    store.f.select(f"PRAGMA max_page_count = {pages + 2}")
    started = time.monotonic()
    with pytest.raises(StoreError) as exc:
        await store.record_polls([plan_with(1, 3000)], "me")
    assert time.monotonic() - started < 5  # never a hang
    assert "database or disk is full" in one_line(exc) and "free some space" in str(exc.value)
    # Nothing of the poll landed, in this connection or in the file.
    assert await store.pending() == []
    assert await store.seen(URL, [plan_with(1, 3000).seen[0]]) == set()
    assert await store.get_feed(URL) == Feed(URL)
    assert rows(store.path, "seen:") == [] and rows(store.path, "outbox:") == []
    # Every later call fails the same way, cleanly, while the disk is full...
    with pytest.raises(StoreError, match="disk is full"):
        await store.record_polls([plan_with(1, 3000)], "me")
    # ... and works again once there is room (the lease is still held).
    store.f.select("PRAGMA max_page_count = 1073741823")
    assert await store.record_polls([plan_with(1, 3000)], "me") == [True]
    assert [d.seq for d in await store.pending()] == [1, 2]
    assert len(rows(store.path, "seen:")) == 3000


async def test_a_dead_worker_thread_is_an_error_then_a_new_connection(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlitedict's thread dies when its commit fails, and every later call
    waited forever: now the call in flight fails and the next reconnects."""
    await follow(store, 1)
    await store.claim_due_feeds("me", 10.0, 10, 60.0)
    execute = store.f.execute
    writes = 0

    def dying(sql: str, args: Any = ()) -> None:
        nonlocal writes
        writes += 1
        execute(sql, args)
        if writes == 3:  # mid-plan, as a failed commit would
            db = store.f._db
            assert db is not None
            db.conn.reqs.put(("--close--", None, weakref.ref(Queue()), None))
            db.conn.join(timeout=10)

    monkeypatch.setattr(store.f, "execute", dying)
    started = time.monotonic()
    with pytest.raises(StoreError, match="worker thread stopped"):
        await store.record_polls([plan_with(1, 10)], "me")
    assert time.monotonic() - started < 5
    monkeypatch.setattr(store.f, "execute", execute)
    # The next call gets a new connection; the dead one committed nothing.
    assert await store.pending() == []
    assert await store.record_polls([plan_with(1, 10)], "me") == [True]
    assert len(await store.pending()) == 2


async def test_closing_after_the_worker_died_does_not_hang(path: str) -> None:
    s = SqliteStore(path)
    await s.open()
    db = s.f._db
    assert db is not None
    db.conn.reqs.put(("--close--", None, weakref.ref(Queue()), None))
    db.conn.join(timeout=10)
    await asyncio.wait_for(s.close(), 10)
    with pytest.raises(StoreError, match="closed"):
        await s.get_chat(1)


# -- kills mid-poll ----------------------------------------------------------
POLLER = """
import asyncio, sys
from bot.models import Chat, ChatKind, Entry, Feed, Subscription
from bot.plan import Enqueue, PollPlan
from bot.store.sqlite import SqliteStore

URL = "https://a.example/feed"

async def main():
    s = SqliteStore(sys.argv[1])
    await s.open()
    await s.subscribe(Chat(1, ChatKind.PRIVATE), Subscription(1, URL, 1.0), new_feed=Feed(URL))
    n = 0
    while True:
        n += 1
        await s.claim_due_feeds("me", 1e9, 1, 60.0)
        plan = PollPlan(
            URL, Feed(URL, next_poll=float(n)), float(n),
            seen=tuple(f"{n}-{i}" for i in range(300)),
            enqueue=(Enqueue(Entry(id=str(n), title="t"), (1,)),),
        )
        assert await s.record_polls([plan], "me") == [True]
        print(n, flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("after", [3, 17, 41])
async def test_a_kill_mid_poll_leaves_each_poll_whole_or_absent(path: str, after: int) -> None:
    proc = spawn(POLLER, path)
    assert proc.stdout is not None
    done = 0
    while done < after:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        done = int(line)
    time.sleep(0.003 * after % 0.05)  # somewhere inside a later poll
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    async with SqliteStore(path) as s:
        queued = {d.entry.id for d in await s.pending() if d.entry}
        last = max(int(i) for i in queued)
        assert last >= done  # nothing acknowledged was lost
        for n in range(1, last + 2):
            marked = await s.seen(URL, [f"{n}-{i}" for i in range(300)])
            # Seen keys and the delivery, together or not at all.
            assert (len(marked), str(n) in queued) in ((300, True), (0, False)), n
        feed = await s.get_feed(URL)
        assert feed is not None and feed.next_poll == float(last)


# -- the key layout's costs --------------------------------------------------
class SqlRecorder:
    """Records every statement the store sends to SQLite."""

    def __init__(self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[tuple[str, tuple[object, ...]]] = []
        self.returned = 0
        select, execute = store.f.select, store.f.execute

        def rec_select(sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
            self.statements.append((sql, tuple(args)))
            result = select(sql, args)
            self.returned += len(result)
            return result

        def rec_execute(sql: str, args: Any = ()) -> None:
            self.statements.append((sql, tuple(args)))
            execute(sql, args)

        monkeypatch.setattr(store.f, "select", rec_select)
        monkeypatch.setattr(store.f, "execute", rec_execute)

    def reads(self) -> list[tuple[str, tuple[object, ...]]]:
        return [(s, a) for s, a in self.statements if s.startswith("SELECT") and " FROM " in s]


def assert_no_scans(path: str, statements: list[tuple[str, tuple[object, ...]]]) -> None:
    with sqlite3.connect(path) as conn:
        for sql, args in statements:
            plan = " ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            assert "SCAN" not in plan, (sql, plan)


async def test_seen_keys_are_a_row_each_and_looked_up_by_key(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = tuple(f"https://big.example/post/{i}" for i in range(20_000))
    await store.subscribe(
        Chat(1, ChatKind.PRIVATE), Subscription(1, URL, 1.0), new_feed=Feed(URL), seen=many
    )
    assert len(rows(store.path, "seen:")) == 20_000
    recorder = SqlRecorder(store, monkeypatch)
    wanted = [*many[19_990:], "new-1", "new-2"]
    assert await store.seen(URL, wanted) == set(many[19_990:])
    assert len(recorder.statements) == 1  # one statement for the 12 keys
    assert recorder.returned == 10
    assert_no_scans(store.path, recorder.statements)


async def test_claiming_reads_the_due_feeds_not_every_feed(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(2000):
        await follow(store, 1, f"https://{i:04d}.example/", next_poll=1000.0 + i)
    await follow(store, 2, "https://due.example/", next_poll=5.0)
    recorder = SqlRecorder(store, monkeypatch)
    [claim] = await store.claim_due_feeds("me", 10.0, 50, 60.0)
    assert claim.feed.url == "https://due.example/"
    assert recorder.returned < 20
    assert_no_scans(store.path, recorder.reads())
    recorder.statements.clear()
    recorder.returned = 0
    assert await store.due_count(10.0) == 0
    assert await store.next_poll_at() == 5.0  # leased, still the earliest
    assert recorder.returned < 10
    assert_no_scans(store.path, recorder.reads())


async def test_the_next_delivery_reads_the_chats_rows_only(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.enqueue(URL, entry(1), range(2, 2000), now=1.0)
    [mine, _] = await store.enqueue(URL, entry(2), [1, 2], now=1.0)
    await store.enqueue(URL, entry(3), range(2, 200), now=1.0)
    recorder = SqlRecorder(store, monkeypatch)
    assert await store.next_delivery(1) == mine
    assert recorder.returned <= 3  # its head, its outbox row, its entry
    assert await store.next_delivery(-5) is None
    recorder.returned = 0
    assert len(await store.outbox_chats(10.0, 5000)) == 1999
    assert recorder.returned <= 2 * 1999  # a row per waiting chat, not per delivery
    assert_no_scans(store.path, recorder.reads())


async def test_an_entry_is_stored_once_and_dropped_with_its_last_delivery(
    store: SqliteStore,
) -> None:
    e = entry(1, html="<p>" + "x" * 10_000 + "</p>")
    deliveries = await store.enqueue(URL, e, range(500), now=1.0)
    assert len(rows(store.path, "entry:")) == 1
    assert len(rows(store.path, "outbox:")) == 500
    assert max(len(v) for _, v in rows(store.path, "outbox:")) < 300
    later = await store.enqueue(URL, e, [1000], now=2.0)
    for d in deliveries:
        await store.complete_delivery(d)
    assert len(rows(store.path, "entry:")) == 1
    assert await store.pending() == later
    await store.complete_delivery(later[0])
    for prefix in ("entry:", "eref:", "outbox:", "cbox:", "chead:", "hseq:"):
        assert rows(store.path, prefix) == [], prefix


async def test_values_are_json_not_pickle(store: SqliteStore) -> None:
    await store.save_chat(Chat(1, ChatKind.PRIVATE, "ü"))
    [(_, value)] = rows(store.path, "chat:")
    assert json.loads(value)["title"] == "ü"


def test_due_keys_sort_as_the_times_do() -> None:
    times = [-1e300, -5.5, -0.0, 0.0, 1e-300, 0.5, 100.0, 100.0000001, 1.7e9, 1e300]
    encoded = [keys.sortable(t) for t in times]
    assert encoded == sorted(encoded)
    assert keys.sortable(-0.0) == keys.sortable(0.0)
    assert keys.due_key(100.0000001, "u") > keys.due_upto(100.0) > keys.due_key(100.0, "u")


@given(st.floats(allow_nan=False), st.floats(allow_nan=False))
def test_due_key_order_is_the_numbers_order(a: float, b: float) -> None:
    assert (keys.sortable(a) < keys.sortable(b)) == (a < b)
    assert (keys.due_key(a, "x\x1fy") < keys.due_upto(b)) == (a <= b)


def assert_indexes_match(path: str) -> None:
    """The due index holds exactly the feeds not gone, at their next_poll; the
    fsub index exactly the subscriptions."""
    feeds = [codec.feed_from_dict(json.loads(v)) for _, v in rows(path, "feed:")]
    want = {keys.due_key(f.next_poll, f.url): f.url for f in feeds if f.status != "gone"}
    assert {k: json.loads(v) for k, v in rows(path, "due:")} == want
    subs = [codec.subscription_from_dict(json.loads(v)) for _, v in rows(path, "sub:")]
    assert {k for k, _ in rows(path, "fsub:")} == {
        keys.fsub_key(s.feed_url, s.chat_id) for s in subs
    }


async def test_the_due_and_subscriber_indexes_follow_every_change(store: SqliteStore) -> None:
    a, b, c = URL, "https://b.example/", "https://c.example/"
    await follow(store, 1, a, next_poll=5.0)
    await follow(store, 2, b, next_poll=7.0)
    await follow(store, 3, c)
    assert_indexes_match(store.path)
    await store.claim_due_feeds("me", 10.0, 10, 60.0)
    gone = Feed(c, status=FeedStatus.GONE)
    moved = Feed(b, title="a moved here", next_poll=99.0)
    plans = [
        PollPlan(a, moved, 10.0, moved_to=b),
        PollPlan(b, Feed(b, next_poll=50.0), 10.0),
        PollPlan(c, gone, 10.0),
    ]
    assert await store.record_polls(plans, "me") == [True, True, True]
    assert_indexes_match(store.path)
    assert await store.next_poll_at() == 50.0
    assert await store.unsubscribe(3, c)
    sub = Subscription(4, b, 1.0)
    await store.subscribe(Chat(4, ChatKind.PRIVATE), sub, new_feed=Feed(b, next_poll=1.0))
    await store.migrate_chat(1, -100)
    assert_indexes_match(store.path)
    assert await store.next_poll_at() == 1.0
    assert await store.stats() == replace(await store.stats(), feeds=1, subscriptions=3)


# -- upgrading a store written before the due index --------------------------
async def test_a_schema_1_store_is_upgraded_in_place(path: str) -> None:
    os.makedirs(os.path.dirname(path))
    old_entry = entry(1)
    digest = codec.entry_digest(old_entry)
    with sqlite3.connect(path) as conn:
        conn.execute(f'CREATE TABLE "{TABLE}" (key TEXT PRIMARY KEY, value BLOB)')
        old = {
            "meta:schema": 1,
            "meta:seq": 7,
            "chat:1": codec.chat_to_dict(Chat(1, ChatKind.PRIVATE)),
            keys.feed_key(URL): codec.feed_to_dict(Feed(URL, next_poll=50.0)),
            keys.sub_key(1, URL): {"chat_id": 1, "feed_url": URL, "created": 2.0},
            keys.sub_key(1, "https://b/"): {"chat_id": 1, "feed_url": "https://b/", "created": 1.0},
            keys.fsub_key(URL, 1): 1,
            keys.fsub_key("https://b/", 1): 1,
            keys.outbox_key(7): {
                "chat_id": 1,
                "feed_url": URL,
                "entry": digest,
                "entry_id": old_entry.id,
                "not_before": 0.0,
                "attempts": 0,
            },
            keys.cbox_key(1, 7): 1,
            keys.entry_key(digest): codec.entry_to_dict(old_entry),
            keys.eref_key(digest): 1,
        }
        conn.executemany(
            f'INSERT INTO "{TABLE}" VALUES (?, ?)', [(k, json.dumps(v)) for k, v in old.items()]
        )
    async with SqliteStore(path) as s:
        assert [x.feed_url for x in await s.chat_subscriptions(1)] == ["https://b/", URL]
        assert await s.next_poll_at() == 50.0
        assert await s.next_delivery(1) == Delivery(7, 1, URL, old_entry)
        assert await s.outbox_chats(0.0, 10) == [1]
        [d] = await s.enqueue(URL, entry(2), [1], now=3.0)
        assert d.seq == 8
        [claim] = await s.claim_due_feeds("me", 60.0, 10, 60.0)
        assert claim.feed.url == URL
    assert_indexes_match(path)


# -- the outbox against a model ----------------------------------------------
def now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a store call to its end: it never awaits (no interleaving)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("a store call awaited")


@pytest.fixture
def fresh_store() -> Iterator[Any]:
    """A factory of open stores, one per hypothesis example."""
    made: list[SqliteStore] = []

    def make() -> SqliteStore:
        s = SqliteStore(os.path.join(tempfile.mkdtemp(dir=tmpdir), "s.sqlite"))
        now(s.open())
        made.append(s)
        return s

    with tempfile.TemporaryDirectory() as tmpdir:
        yield make
        for s in made:
            now(s.close())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["enqueue", "complete", "retry", "rechat", "migrate", "pause"]),
            st.integers(0, 3),
        ),
        max_size=25,
    )
)
def test_the_outbox_and_its_indexes_match_a_model(fresh_store: Any, ops: Any) -> None:
    s: SqliteStore = fresh_store()
    model: list[Delivery] = []
    heads: dict[int, Delivery] = {}
    for op, n in ops:
        if op == "enqueue":
            model += now(s.enqueue(URL, entry(n), range(n + 1), float(n)))
        elif op == "migrate":  # chat n becomes -n-1; a repeat of what -n-1 has goes
            now(s.migrate_chat(n, -n - 1))
            kept: set[tuple[int, str]] = set()
            merged = []
            for d in sorted(model, key=lambda d: d.seq):
                if d.chat_id == n:
                    d = replace(d, chat_id=-n - 1)
                assert d.entry is not None
                if d.chat_id == -n - 1 and (d.chat_id, d.entry.id) in kept:
                    continue
                kept.add((d.chat_id, d.entry.id))
                merged.append(d)
            model = merged
        elif op == "pause":
            now(s.pause_chat(n))
            model = [d for d in model if d.chat_id != n]
        elif model:
            d = model[n % len(model)]
            if op == "complete":
                now(s.complete_delivery(d))
                model.remove(d)
            else:
                new = replace(d, attempts=d.attempts + 1, not_before=float(n), sent_parts=n)
                if op == "rechat":
                    new = replace(new, chat_id=(d.chat_id + 1) % 4)
                now(s.reschedule_delivery(new))
                model[model.index(d)] = new
        assert now(s.pending()) == model
        heads = {}
        for d in model:
            heads.setdefault(d.chat_id, d)
        for chat_id in range(-4, 4):
            assert now(s.next_delivery(chat_id)) == heads.get(chat_id)
        for t in (0.0, 1.0, 3.0):
            ready = [
                c for c, d in sorted(heads.items(), key=lambda x: x[1].seq) if d.not_before <= t
            ]
            assert now(s.outbox_chats(t, 100)) == ready
        want_at = min((d.not_before for d in heads.values()), default=None)
        assert now(s.next_delivery_at()) == want_at
    index = {k.removeprefix("cbox:") for k, _ in rows(s.path, "cbox:")}
    assert index == {f"{d.chat_id}\x1f{d.seq:020d}" for d in model}
    live = {codec.entry_digest(d.entry) for d in model if d.entry}
    assert {k.removeprefix("entry:") for k, _ in rows(s.path, "entry:")} == live
    refs = {k.removeprefix("eref:"): int(v) for k, v in rows(s.path, "eref:")}
    assert refs == {
        h: sum(codec.entry_digest(d.entry) == h for d in model if d.entry) for h in live
    }
    assert len(rows(s.path, "chead:")) == len(rows(s.path, "hseq:")) == len(heads)


ODD = st.sampled_from(["\x1f", "\x1e", "\x00", "😀", "\uffff", "\U0010ffff", "\ud800", ":", "/"])
odd_text = st.text(st.characters(exclude_categories=()) | ODD, max_size=12)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    urls=st.lists(odd_text, min_size=2, max_size=4, unique=True),
    marks=st.lists(odd_text, max_size=8, unique=True),
    data=st.data(),
)
def test_seen_sets_never_mix_whatever_the_characters(
    fresh_store: Any, urls: list[str], marks: list[str], data: st.DataObject
) -> None:
    """The key escaping: separators, escapes, NUL, lone surrogates and the
    top of Unicode in URLs and keys never let one feed's rows reach another's."""
    s: SqliteStore = fresh_store()
    marked = {
        url: data.draw(st.lists(st.sampled_from(marks), unique=True)) if marks else []
        for url in urls
    }
    for n, (url, ks) in enumerate(marked.items()):
        sub = Subscription(n, url, 1.0)
        now(s.subscribe(Chat(n, ChatKind.PRIVATE), sub, new_feed=Feed(url), seen=ks, now=1.0))
    for url, ks in marked.items():
        assert now(s.seen(url, marks)) == set(ks)
        assert [x.feed_url for x in now(s.chat_subscriptions(urls.index(url)))] == [url]
    gone, kept, *rest = urls
    assert now(s.unsubscribe(0, gone))
    assert now(s.seen(gone, marks)) == set() and now(s.get_feed(gone)) is None
    # A poll of ``kept`` that prunes everything but its first key.
    keep = tuple(marked[kept][:1])
    assert [c.feed.url for c in now(s.claim_due_feeds("me", 1e9, 10, 60.0))] != []
    plan = PollPlan(kept, Feed(kept, next_poll=5.0), 2.0, seen=keep, prune_before=2.0)
    assert now(s.record_polls([plan], "me")) == [True]
    assert now(s.seen(kept, marks)) == set(keep)
    for url in rest:
        assert now(s.seen(url, marks)) == set(marked[url])
    assert {f.url for f in [now(s.get_feed(u)) for u in urls] if f} == {kept, *rest}
    assert_indexes_match(s.path)


async def test_scan_many_reads_each_prefix_range_in_key_order_without_a_table_scan(tmp_path):
    from bot.store.sqlite import SqliteStore

    store = SqliteStore(str(tmp_path / "s.sqlite"))
    await store.open()
    try:
        f = store.f
        with f.transaction("test"):
            for key in ["a:2", "a:1", "ab:1", "b:1", "c:9", "a;"]:
                f.put(key, key.upper())
        statements: list[tuple[str, list]] = []
        real_select = f.select

        def select(sql, args=()):
            statements.append((sql, list(args)))
            return real_select(sql, args)

        f.select = select  # type: ignore[method-assign]
        found = f.scan_many(["a:", "b:", "z:", *[f"n{i}:" for i in range(400)]])
        f.select = real_select  # type: ignore[method-assign]
        assert found["a:"] == [("a:1", "A:1"), ("a:2", "A:2")]
        assert found["b:"] == [("b:1", "B:1")]
        assert found["z:"] == [] and found["n399:"] == []
        assert 1 < len(statements) <= 3  # a few statements, not one per prefix
        for sql, args in statements:
            plan = real_select("EXPLAIN QUERY PLAN " + sql, args)
            assert not any(" SCAN " in f" {row[-1]} " for row in plan), plan
    finally:
        await store.close()


async def test_a_claim_writes_nothing_and_unchanged_polls_share_their_statements(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = [f"https://{i:03d}.example/" for i in range(100)]
    for url in urls:
        await follow(store, 1, url, next_poll=1.0)
    recorder = SqlRecorder(store, monkeypatch)
    claims = await store.claim_due_feeds("me", 10.0, 100, 60.0)
    assert len(claims) == 100
    # Leases live in memory (one process per file): the claim only reads.
    assert not [s for s, _ in recorder.statements if not s.startswith("SELECT")]
    assert len(recorder.statements) < 10
    recorder.statements.clear()
    plans = [
        PollPlan(c.feed.url, Feed(c.feed.url, next_poll=700.0 + i), 10.0, changed=False)
        for i, c in enumerate(claims)
    ]
    assert await store.record_polls(plans, "me") == [True] * 100
    # 100 schedule-only plans: a constant handful of statements, not a few each.
    assert len(recorder.statements) <= 8
    assert await store.record_polls(plans[:1], "me") == [False]  # released
    assert await store.next_poll_at() == 700.0
    assert await store.due_count(699.0) == 0 and await store.due_count(800.0) == 100
    assert (await store.get_feed(urls[5])) == Feed(urls[5], next_poll=705.0)
