"""Three `feedbot run` processes on one PostgreSQL database (issue 7).

One config (``[store] url``), three subprocesses, 300 feeds, 50 chats,
entries published throughout. Every entry reaches every chat exactly once;
each feed is polled once per interval, not once per process; ``kill -9`` of
the sender mid-broadcast hands the role to another process, which finishes
the broadcast, repeating at most the sends Telegram had accepted and the dead
process had not recorded; ``kill -9`` of a poller: the feeds it held are
polled again within lease + interval. Telegram sees one getUpdates consumer
at a time throughout (the fake answers a second one 409 Conflict, and counts
it).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

import testkit.postgres
from bot.fetch import normalize_url
from bot.flood import MESSAGES_PER_SECOND
from bot.models import Chat, ChatKind, Feed, Subscription
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer, RssFeed
from testkit.harness import bot_log, config_store, eventually, start_bot, write_config

FEEDS = 300
CHATS = range(9001, 9051)
INTERVAL = 2.0
LEASE = 4.0
NAMES = ("p0", "p1", "p2")
BROADCAST = "/everyone.xml"
SENDER_LINE = re.compile(r"-(\d+)-[0-9a-f]+ is the sender now")


def path_of(n: int) -> str:
    return f"/f{n}.xml"


def chat_of(n: int) -> int:
    return CHATS[n % len(CHATS)]


@pytest.fixture
async def database() -> AsyncIterator[str]:
    reason = await testkit.postgres.unavailable()
    if reason:
        pytest.skip(reason)
    async with testkit.postgres.fresh_database() as url:
        yield url


def polls(feeds: FeedServer) -> Counter[str]:
    return Counter(r.path for r in feeds.requests)


def received(telegram: FakeTelegram) -> Counter[tuple[int, str]]:
    """How often each (chat, entry title) reached Telegram."""
    got: Counter[tuple[int, str]] = Counter()
    for chat in CHATS:
        for m in telegram.sent(chat):
            if m.plain:
                got[(chat, m.plain.splitlines()[0])] += 1
    return got


async def seed(config: Path, feeds: FeedServer) -> None:
    """Feed n followed by one chat; the broadcast feed by every chat."""
    now = time.time()
    async with config_store(config) as store:
        for n in range(FEEDS):
            url = normalize_url(feeds.url(path_of(n)))
            chat = chat_of(n)
            await store.subscribe(
                Chat(chat, ChatKind.PRIVATE),
                Subscription(chat, url, created=now),
                new_feed=Feed(url),
                now=now,
            )
        url = normalize_url(feeds.url(BROADCAST))
        for i, chat in enumerate(CHATS):
            await store.subscribe(
                Chat(chat, ChatKind.PRIVATE),
                Subscription(chat, url, created=now),
                new_feed=Feed(url) if i == 0 else None,
                now=now,
            )


def sender_pid(config: Path, processes: dict[str, asyncio.subprocess.Process]) -> str | None:
    """The name of the live process whose log says it became the sender last."""
    for name, process in processes.items():
        if process.returncode is None:
            log = bot_log(config, tail=1_000_000, name=name)
            pids = SENDER_LINE.findall(log)
            if pids and int(pids[-1]) == process.pid and "no longer the sender" not in log:
                return name
    return None


async def kill(process: asyncio.subprocess.Process) -> None:
    process.kill()  # SIGKILL: no clean shutdown
    await process.wait()
    await asyncio.sleep(0.2)  # the fakes finish what had reached them


async def test_three_processes_share_the_work_and_survive_kill_9(
    tmp_path: Path, telegram: FakeTelegram, feeds: FeedServer, database: str
) -> None:
    config = write_config(
        tmp_path,
        telegram,
        interval=f"{INTERVAL:g}s",
        timeout="3s",
        store_url=database,
        extra=f'adaptive = false\nlease = "{LEASE:g}s"\n',
    )
    live: dict[int, RssFeed] = {n: feeds.rss(path_of(n), title=f"Feed {n}") for n in range(FEEDS)}
    everyone = feeds.rss(BROADCAST, title="Everyone")
    for chat in CHATS:
        telegram.add_user(chat)
    await seed(config, feeds)
    expected: Counter[tuple[int, str]] = Counter()

    def publish(n: int, title: str) -> None:
        live[n].publish(title, link=f"https://f{n}.example/{len(expected)}")
        expected[(chat_of(n), title)] = 1

    processes = {name: await start_bot(config, name) for name in NAMES}
    try:
        # Every feed's first poll (it learns what is there: nothing yet).
        await eventually(lambda: len(polls(feeds)) == FEEDS + 1, timeout=40, message="first polls")
        await eventually(lambda: sender_pid(config, processes), timeout=10, message="a sender")

        # -- steady state: once per interval, not once per process ----------
        for n in range(0, FEEDS, 10):
            publish(n, f"Feed {n} one")
        before, started = polls(feeds), time.monotonic()
        await asyncio.sleep(3 * INTERVAL)
        after, window = polls(feeds), time.monotonic() - started
        rounds = window / INTERVAL  # ± 10 % jitter
        per_feed = [after[path_of(n)] - before[path_of(n)] for n in range(FEEDS)]
        assert max(per_feed) <= rounds + 2, f"a feed polled {max(per_feed)}× in {window:.1f}s"
        assert sum(per_feed) >= 0.5 * FEEDS * rounds, f"{sum(per_feed)} polls in {window:.1f}s"
        for n in range(5, FEEDS, 10):
            publish(n, f"Feed {n} two")

        # -- kill -9 of the sender mid-broadcast -----------------------------
        titles = [f"Everyone {k}" for k in range(3)]
        for title in titles:
            everyone.publish(title, link=f"https://everyone.example/{title}")
            for chat in CHATS:
                expected[(chat, title)] = 1

        def broadcast_reached() -> int:
            return sum(n for (_, t), n in received(telegram).items() if t in titles)

        await eventually(lambda: broadcast_reached() >= 40, timeout=30, message="broadcast")
        sender = sender_pid(config, processes)
        assert sender is not None
        await kill(processes[sender])
        # Requests the dead process had already written still reach the fake
        # (its server reads them after the kill): let them land before taking
        # what Telegram had accepted. No other process is the sender yet: the
        # role changes hands only at the next check, seconds away.
        await asyncio.sleep(0.3)
        at_kill = received(telegram)
        assert broadcast_reached() < len(titles) * len(CHATS), "killed after the broadcast"
        for n in range(7, FEEDS, 10):
            publish(n, f"Feed {n} three")
        await eventually(
            lambda: sender_pid(config, processes), timeout=15, message="another sender"
        )

        # -- kill -9 of a poller holding leases ------------------------------
        stalled = [path_of(n) for n in range(1, FEEDS, 10)]
        for path in stalled:
            feeds.stall(path, 2.5)  # its polls are in flight for a while
        try:
            await eventually(lambda: feeds.in_flight >= 8, timeout=15, message="polls in flight")
        except AssertionError:
            recent = sum(1 for r in feeds.requests if r.time > time.monotonic() - 5)
            raise AssertionError(
                f"in flight {feeds.in_flight}, {recent} requests in 5 s, "
                + " | ".join(bot_log(config, 1500, n) for n in NAMES)
            ) from None
        # Kill a poller (not the sender) that holds leases right now: which
        # process claimed the stalled feeds is chance.
        sender = sender_pid(config, processes)
        pollers = [n for n in NAMES if processes[n].returncode is None and n != sender]

        async def leases_of(name: str) -> int:
            conn = await asyncpg.connect(database)
            try:
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM feeds WHERE lease_owner LIKE $1",
                        f"%-{processes[name].pid}-%",
                    )
                )
            finally:
                await conn.close()

        async def a_poller_holds_leases() -> bool:
            return any([await leases_of(n) for n in pollers])

        await eventually(a_poller_holds_leases, timeout=10, message="a poller holding leases")
        counts = {n: await leases_of(n) for n in pollers}
        poller = max(counts, key=lambda n: counts[n])
        pid = processes[poller].pid
        await kill(processes[poller])
        killed_at = time.monotonic()
        for path in stalled:
            feeds.stall(path, 0)
        conn = await asyncpg.connect(database)
        try:
            held = [
                r["url"]
                for r in await conn.fetch(
                    "SELECT url FROM feeds WHERE lease_owner LIKE $1", f"%-{pid}-%"
                )
            ]
        finally:
            await conn.close()
        assert held, "the killed poller held no lease"
        held_paths = {"/" + url.rsplit("/", 1)[1] for url in held}

        def polled_again() -> bool:
            return all(
                any(r.time > killed_at for r in feeds.requests_for(path)) for path in held_paths
            )

        await eventually(polled_again, timeout=LEASE + INTERVAL + 2, message="its feeds again")

        # -- every entry reached every chat exactly once ---------------------
        await eventually(
            lambda: all(received(telegram)[key] >= 1 for key in expected),
            timeout=60,
            message="every entry in every chat",
        )
        await asyncio.sleep(INTERVAL)  # anything sent twice would have come by now
    finally:
        for process in processes.values():
            if process.returncode is None:
                await kill(process)
    got = received(telegram)
    assert set(got) == set(expected), set(got) ^ set(expected)
    repeats = {key: n for key, n in got.items() if n > 1}
    # Only sends Telegram had accepted when the sender died, once each, and
    # no more than it can have in flight.
    assert all(at_kill[key] == 1 and n == 2 for key, n in repeats.items()), repeats
    assert len(repeats) <= MESSAGES_PER_SECOND, repeats
    assert telegram.update_conflicts == 0
    for name in NAMES:
        assert "Traceback" not in bot_log(config, tail=1_000_000, name=name), name
