"""What only the PostgreSQL store promises, on the real server: migrations
from every earlier schema version, several stores (processes) sharing one
database, the sender lock, and secrets kept out of errors. The behaviour both
backends share is in tests/test_store_conformance.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.models import Chat, ChatKind, Entry, Feed, Subscription
from bot.plan import PollPlan
from bot.store import StoreError
from bot.store.pg_schema import LATEST, migrate, migrations, redact
from testkit import postgres

asyncpg = pytest.importorskip("asyncpg")
from bot.store.postgres import PostgresStore  # noqa: E402  (needs asyncpg)

PASSWORD = "hunter2-do-not-print"


@pytest.fixture
async def url() -> AsyncIterator[str]:
    reason = await postgres.unavailable()
    if reason:
        pytest.skip(reason)
    async with postgres.fresh_database() as db:
        yield db


def with_password(url: str) -> str:
    # Trust authentication ignores it, so the store still connects.
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


async def add_feeds(store: PostgresStore, n: int) -> list[str]:
    urls = [f"http://feeds.test/{i}" for i in range(n)]
    for i, u in enumerate(urls):
        chat = Chat(1000 + i, ChatKind.PRIVATE)
        sub = Subscription(chat.id, u, created=1.0)
        assert await store.subscribe(chat, sub, new_feed=Feed(u, next_poll=float(i % 7)))
    return urls


# -- migrations ----------------------------------------------------------------
async def _data_v1(conn: asyncpg.Connection) -> None:
    """Rows as schema 1 (and 2, which only adds indexes) holds them."""
    await conn.execute("INSERT INTO chats (id, kind, title) VALUES (7, 'group', 'G')")
    await conn.execute(
        "INSERT INTO feeds (url, next_poll, status, state) VALUES"
        """ ('http://a.test/f', 50, 'ok', '{"title": "A", "etag": "x", "error_count": 2}')"""
    )
    await conn.execute(
        "INSERT INTO subscriptions (chat_id, feed_url, created, style)"
        """ VALUES (7, 'http://a.test/f', 3.0, '{"summary": "full"}')"""
    )
    await conn.execute("INSERT INTO seen VALUES ('http://a.test/f', 'k1', 40)")
    await conn.execute("""INSERT INTO entries VALUES ('d1', '{"id": "e1", "title": "Hello"}')""")
    await conn.execute(
        "INSERT INTO outbox (chat_id, feed_url, entry_digest, entry_id, created)"
        " VALUES (7, 'http://a.test/f', 'd1', 'e1', 41)"
    )


#: For each earlier schema version, how to fill a database in its shape. A new
#: migration whose tables change adds its version here (the test below insists).
SHAPES: dict[int, Callable[[asyncpg.Connection], Awaitable[None]]] = {1: _data_v1, 2: _data_v1}


def test_migrations_are_numbered_and_shipped() -> None:
    assert [m.version for m in migrations()] == list(range(1, LATEST + 1))
    assert LATEST >= 2


@pytest.mark.parametrize("version", range(1, LATEST))
async def test_every_earlier_version_upgrades_with_its_data(url: str, version: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        assert await migrate(conn, version) == version
        await SHAPES[version](conn)
    finally:
        await conn.close()

    async with PostgresStore(url) as store:
        feed = await store.get_feed("http://a.test/f")
        assert feed is not None
        assert (feed.title, feed.etag, feed.error_count, feed.next_poll) == ("A", "x", 2, 50.0)
        [sub] = await store.chat_subscriptions(7)
        assert sub.style.summary == "full" and sub.created == 3.0
        assert await store.seen("http://a.test/f", ["k1", "k2"]) == {"k1"}
        [delivery] = await store.pending()
        assert delivery.entry is not None and delivery.entry.title == "Hello"
        assert (await store.stats()).failing_feeds == 1
        assert await store.migrate_to() == LATEST

    conn = await asyncpg.connect(url)
    try:
        versions = await conn.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in versions] == list(range(1, LATEST + 1))
    finally:
        await conn.close()


def test_every_earlier_version_has_a_data_shape() -> None:
    assert set(range(1, LATEST)) <= SHAPES.keys()


async def test_three_processes_opening_at_once_migrate_once(url: str) -> None:
    stores = [PostgresStore(url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert [await s.migrate_to() for s in stores] == [LATEST] * 3
    finally:
        await asyncio.gather(*(s.close() for s in stores))


def test_feedbot_migrate(url: str, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEEDBOT_STORE_URL", with_password(url))
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == f"schema version {LATEST}\n"
    assert main(["migrate"]) == 0  # already there: nothing to do, same answer
    assert capsys.readouterr().out == f"schema version {LATEST}\n"

    monkeypatch.setenv("FEEDBOT_STORE_URL", with_password(url) + "_missing")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and PASSWORD not in err


# -- several processes on one database ------------------------------------------
async def test_concurrent_claims_never_share_a_feed(url: str) -> None:
    async with PostgresStore(url) as a, PostgresStore(url) as b:
        urls = await add_feeds(a, 300)

        async def drain(store: PostgresStore, owner: str) -> list[str]:
            got: list[str] = []
            while claims := await store.claim_due_feeds(owner, 100.0, 17, 60.0):
                got += [c.feed.url for c in claims]
            return got

        got_a, got_b = await asyncio.gather(drain(a, "a"), drain(b, "b"))
        assert not set(got_a) & set(got_b)
        assert sorted(got_a + got_b) == sorted(urls)
        assert got_a and got_b  # both really took part
        assert await a.due_count(100.0) == 0


async def test_an_expired_lease_is_taken_over(url: str) -> None:
    async with PostgresStore(url) as a, PostgresStore(url) as b:
        [feed_url] = await add_feeds(a, 1)
        [claim] = await a.claim_due_feeds("a", 100.0, 10, 30.0)
        assert claim.lease_until == 130.0
        assert await b.claim_due_feeds("b", 129.0, 10, 30.0) == []
        assert await b.due_count(129.0) == 0
        [taken] = await b.claim_due_feeds("b", 131.0, 10, 30.0)
        assert taken.feed.url == feed_url

        late = Feed(feed_url, next_poll=999.0)
        # The first holder's plan comes too late: skipped, changes nothing.
        assert await a.record_polls([PollPlan(feed_url, late, 140.0, changed=False)], "a") == [
            False
        ]
        assert await a.record_polls([PollPlan(feed_url, late, 140.0, seen=("k",))], "a") == [False]
        assert await b.seen(feed_url, ["k"]) == set()
        fresh = Feed(feed_url, next_poll=500.0)
        assert await b.record_polls([PollPlan(feed_url, fresh, 140.0, changed=False)], "b") == [
            True
        ]
        stored = await a.get_feed(feed_url)
        assert stored is not None and stored.next_poll == 500.0
        # Released: due again at its next poll, to anyone.
        [again] = await a.claim_due_feeds("a", 500.0, 10, 30.0)
        assert again.feed.url == feed_url


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> float:
    """Seconds until ``check`` is true; fails after ``seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        assert loop.time() - start < seconds, "not within the time allowed"
        await asyncio.sleep(0.1)
    return loop.time() - start


async def test_the_sender_role_is_exclusive_and_taken_over(url: str) -> None:
    a, b, c = PostgresStore(url), PostgresStore(url), PostgresStore(url)
    for s in (a, b, c):
        await s.open()
    try:
        assert await a.hold_sender("a")
        assert await a.hold_sender("a")  # staying the sender
        assert not await b.hold_sender("b")
        assert not await c.hold_sender("c")

        await a.close()  # the holder goes away: its session ends, the lock with it
        await wait_for(lambda: b.hold_sender("b"))
        assert not await c.hold_sender("c")

        # The holder's connection dies under it (a crashed host, a restarted
        # pooler): it loses the role, and another process takes it.
        admin = await asyncpg.connect(url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'feedbot sender b'"
            )
        finally:
            await admin.close()
        assert killed == 1
        assert not await b.hold_sender("b")
        await wait_for(lambda: c.hold_sender("c"))
        assert not await b.hold_sender("b")  # b reconnects, but c holds it now
    finally:
        for s in (a, b, c):
            await s.close()


# -- the entries table ------------------------------------------------------------
async def test_an_entry_is_stored_once_and_collected_when_unreferenced(url: str) -> None:
    async with PostgresStore(url) as store:
        entry = Entry("e1", "Hello", html="<p>body</p>")
        deliveries = await store.enqueue("http://f.test/", entry, [1, 2, 3], 10.0)
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM entries") == 1
            for d in deliveries[:2]:
                await store.complete_delivery(d)
            assert await conn.fetchval("SELECT count(*) FROM entries") == 1
            await store.complete_delivery(deliveries[2])
            assert await conn.fetchval("SELECT count(*) FROM entries") == 0
        finally:
            await conn.close()


# -- secrets ------------------------------------------------------------------------
def test_redact() -> None:
    assert redact("postgresql://u:p%40ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


async def test_the_password_is_never_in_an_error(url: str) -> None:
    with pytest.raises(StoreError) as unreachable:
        await PostgresStore(f"postgresql://u:{PASSWORD}@127.0.0.1:1/db").open()
    with pytest.raises(StoreError) as missing:
        await PostgresStore(with_password(url) + "_missing").open()

    store = PostgresStore(with_password(url))
    await store.open()
    admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()
    with pytest.raises(StoreError) as dropped:
        await store.claim_due_feeds("a", 1.0, 10, 30.0)
    await store.close()

    for exc in (unreachable.value, missing.value, dropped.value):
        text = str(exc)
        assert PASSWORD not in text and "\n" not in text
        assert text.startswith("PostgreSQL postgresql://")


# -- what PostgreSQL text cannot hold -------------------------------------------------
ODD = "nul\x00 lone\ud800 sep\x1e0041 end"


async def test_nul_and_lone_surrogates_round_trip(url: str) -> None:
    """PostgreSQL refuses NUL in text and jsonb, and UTF-8 has no lone
    surrogates; a JSON feed may carry both. What goes in comes back."""
    from bot.models import Notice
    from bot.plan import Enqueue, Tell

    async with PostgresStore(url) as store:
        f = "http://odd.test/feed"
        chat = Chat(5, ChatKind.PRIVATE)
        await store.subscribe(chat, Subscription(5, f, 1.0), new_feed=Feed(f), seen=[ODD])
        assert await store.seen(f, [ODD, "nul", "sep\x1e0041 end"]) == {ODD}
        assert len(await store.claim_due_feeds("o", 10.0, 10, 30.0)) == 1
        entry = Entry(ODD, ODD, html=ODD, categories=(ODD,))
        state = Feed(f, title=ODD, etag=ODD, next_poll=99.0)
        notice = Notice("feed_failing", {"error": ODD})
        batch = PollPlan(f, state, 10.0, seen=(ODD + "2",), enqueue=(Enqueue(entry, (5,)),),
                         tell=(Tell(notice, (5,)),))  # fmt: skip
        assert await store.record_polls([batch], "o") == [True]
        assert await store.get_feed(f) == state
        assert await store.seen(f, [ODD + "2"]) == {ODD + "2"}
        [d1, d2] = await store.pending()
        assert d1.entry == entry and d2.notice == notice
        [d3] = await store.enqueue(f, entry, [5], 11.0)
        assert (await store.pending())[-1].entry == entry == d3.entry


async def test_joining_as_the_last_subscriber_leaves_never_strands_a_subscription(
    url: str,
) -> None:
    """Two processes: chat 1 leaves the feed (its last subscriber) while chat
    2 subscribes to it as to a feed that exists. Either the feed stays, or the
    subscribe fails and says so; never a subscription to a feed that is gone
    (nobody would ever poll it)."""
    async with PostgresStore(url) as a, PostgresStore(url) as b:
        f = "http://race.test/feed"
        await a.subscribe(Chat(1, ChatKind.PRIVATE), Subscription(1, f, 1.0), new_feed=Feed(f))
        gate = await asyncpg.connect(url)
        try:
            # Hold the feed row so both calls queue behind it: leaving first.
            tx = gate.transaction()
            await tx.start()
            await gate.execute("SELECT 1 FROM feeds WHERE url = $1 FOR UPDATE", f)
            leaving = asyncio.create_task(a.unsubscribe(1, f))
            await asyncio.sleep(0.3)
            joining = asyncio.create_task(b.subscribe(Chat(2, ChatKind.PRIVATE),
                                                      Subscription(2, f, 2.0)))  # fmt: skip
            await asyncio.sleep(0.3)
            await tx.rollback()
        finally:
            await gate.close()
        assert await leaving is True
        with pytest.raises(StoreError, match="removed meanwhile"):
            await joining
        assert await b.get_feed(f) is None
        assert await b.get_subscription(2, f) is None


async def test_a_database_newer_than_this_feedbot_is_refused(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", LATEST + 1)
    finally:
        await conn.close()
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1}, newer"):
        await PostgresStore(url).open()


async def test_the_store_carries_on_after_its_connections_are_cut(url: str) -> None:
    """A database restart or a pooler dropping sessions: at most the calls
    in flight fail (a one-line StoreError); the next ones reconnect."""
    async with PostgresStore(url) as store:
        [feed_url] = await add_feeds(store, 1)
        admin = await asyncpg.connect(url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        for _ in range(3):
            try:
                feed = await store.get_feed(feed_url)
                break
            except StoreError as exc:
                assert "\n" not in str(exc)
        else:
            pytest.fail("the store did not reconnect")
        assert feed is not None and feed.url == feed_url
        assert len(await store.claim_due_feeds("o", 100.0, 10, 30.0)) == 1
