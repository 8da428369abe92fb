"""`feedbot run` as a user runs it: a subprocess, stopped (SIGTERM or kill -9), started again.

What a kill -9 may repeat is exactly this: a message Telegram accepted whose
removal from the outbox the kill prevented. After the kill (before the
restart) the tests read the store and the fake to find those deliveries —
still queued, yet already at the fake — and then require every other
(chat, entry) to arrive exactly once and those exactly twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from bot.fetch import normalize_url
from bot.flood import MESSAGES_PER_SECOND
from bot.models import Chat, ChatKind, Feed, Subscription
from testkit.fake_telegram import FakeTelegram
from testkit.feed_server import FeedServer
from testkit.harness import (
    bot_log,
    config_store,
    eventually,
    kill,
    start_bot,
    terminate,
    titles,
    write_config,
)

#: Every test here runs on the embedded file and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("e2e_store")

USER = 3001


async def in_flight_at_kill(
    tmp_path: Path, telegram: FakeTelegram, chat_ids: Iterable[int]
) -> tuple[set[tuple[int, str]], int]:
    """The (chat, entry title) pairs Telegram accepted but the stopped bot had not
    yet removed from its outbox: the only ones allowed to arrive twice. Also
    how many deliveries were still queued."""
    chats = set(chat_ids)
    async with config_store(tmp_path / "config.toml") as store:
        pending = [d for d in await store.pending() if d.chat_id in chats and d.entry]
    accepted = {
        (d.chat_id, d.entry.title)
        for d in pending
        if d.entry and titles(telegram, d.chat_id)[d.entry.title]
    }
    return accepted, len(pending)


async def test_kill_then_restart_sends_what_was_missed_once(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    feed = feeds.rss("/r.xml", title="Restart Feed")
    feed.publish("Story 0", link="https://r.example/0")
    config = write_config(tmp_path, telegram)

    bot = await start_bot(config)
    try:
        telegram.user_says(USER, USER, f"/subscribe {feeds.url('/r.xml')}")
        await telegram.wait_sent(USER, 2, timeout=45)
        feed.publish("Story 1", link="https://r.example/1")
        # Killed the moment Story 1 reaches Telegram: its removal from the
        # outbox may or may not have been committed.
        await eventually(lambda: titles(telegram, USER)["Story 1"], timeout=45, message="story 1")
    finally:
        await kill(bot)
    repeat, _ = await in_flight_at_kill(tmp_path, telegram, [USER])
    assert repeat <= {(USER, "Story 1")}, "only the send in flight at the kill may repeat"

    # Published while the bot is down.
    feed.publish("Story 2", link="https://r.example/2")
    feed.publish("Story 3", link="https://r.example/3")

    expected = {"Story 0": 1, "Story 1": 1 + len(repeat), "Story 2": 1, "Story 3": 1}
    bot = await start_bot(config)
    try:
        await eventually(
            lambda: all(titles(telegram, USER)[t] >= n for t, n in expected.items()),
            timeout=60,
            message="stories published while down",
        )
        # Two more polls of the feed: nothing seen before comes again.
        polls = feeds.count("/r.xml")
        await eventually(lambda: feeds.count("/r.xml") >= polls + 2, timeout=10)
        await terminate(bot, config)
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    stories = {t: n for t, n in titles(telegram, USER).items() if t.startswith("Story")}
    assert stories == expected
    async with config_store(tmp_path / "config.toml") as store:
        assert await store.pending() == []


BROADCAST_CHATS = range(7001, 7101)


async def seed_broadcast(tmp_path: Path, telegram: FakeTelegram, url: str) -> None:
    """100 private chats following one feed, as if each had sent /subscribe."""
    now = time.time()
    async with config_store(tmp_path / "config.toml") as store:
        for n, chat_id in enumerate(BROADCAST_CHATS):
            telegram.add_user(chat_id)
            feed = Feed(url, title="Broadcast Feed") if n == 0 else None  # due at once
            sub = Subscription(chat_id, url, created=now)
            await store.subscribe(Chat(chat_id, ChatKind.PRIVATE), sub, new_feed=feed, now=now)


@pytest.mark.parametrize("stop", ["kill -9", "SIGTERM"])
async def test_stop_during_a_broadcast_then_restart(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer, stop: str
):
    feed = feeds.rss("/b.xml", title="Broadcast Feed")  # no entries yet
    url = normalize_url(feeds.url("/b.xml"))
    config = write_config(tmp_path, telegram)
    await seed_broadcast(tmp_path, telegram, url)

    def reached() -> int:
        return sum(1 for c in BROADCAST_CHATS if titles(telegram, c)["Big news"])

    bot = await start_bot(config)
    try:
        await eventually(lambda: feeds.count("/b.xml") >= 1, timeout=45, message="first poll")
        feed.publish("Big news", link="https://b.example/news")
        # The pacer sends 30 a second: stop it a quarter of the way through.
        await eventually(lambda: reached() >= 25, timeout=45, message="broadcast under way")
        if stop == "SIGTERM":
            await terminate(bot, config)
    finally:
        if bot.returncode is None:
            await kill(bot)
    got_before = reached()
    repeat, queued = await in_flight_at_kill(tmp_path, telegram, BROADCAST_CHATS)
    assert got_before < len(BROADCAST_CHATS) and queued > 0, "killed mid-broadcast"
    assert got_before + queued - len(repeat) == len(BROADCAST_CHATS), "nothing lost"
    # The bound: the pacer counts a send against the 30-a-second window from
    # the moment it lets it go until its answer, so no more than 30 are ever
    # on the wire; and a delivery leaves the outbox (commit included) in the
    # same step of the event loop as its answer, before any other send can
    # start. A repeat is such a send answered (or about to be) at the kill.
    assert len(repeat) <= MESSAGES_PER_SECOND
    if stop == "SIGTERM":
        # A clean stop lets the sends on the wire finish and commit.
        assert repeat == set()

    expected = {c: 1 + ((c, "Big news") in repeat) for c in BROADCAST_CHATS}
    bot = await start_bot(config)
    try:
        await eventually(
            lambda: all(titles(telegram, c)["Big news"] >= n for c, n in expected.items()),
            timeout=60,
            message="the rest of the broadcast",
        )
        await terminate(bot, config)
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    assert {c: titles(telegram, c)["Big news"] for c in BROADCAST_CHATS} == expected
    async with config_store(tmp_path / "config.toml") as store:
        assert await store.pending() == []


async def test_sigterm_with_polls_in_flight_stops_cleanly(
    tmp_path, telegram: FakeTelegram, feeds: FeedServer
):
    telegram.add_user(USER)
    paths = [f"/slow{n}.xml" for n in range(6)]
    for path in paths:
        feeds.rss(path, title=path).publish("x")
    config = write_config(tmp_path, telegram)
    bot = await start_bot(config)
    try:
        for path in paths:
            telegram.user_says(USER, USER, f"/subscribe {feeds.url(path)}")
        await eventually(
            lambda: sum("Subscribed" in (m.plain or "") for m in telegram.sent(USER)) == 6,
            timeout=45,
            message="six subscriptions",
        )
        for path in paths:
            feeds.stall(path, 3)  # the next polls hang mid-fetch
        await eventually(lambda: feeds.in_flight >= 3, timeout=10, message="polls in flight")
        bot.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bot.wait(), 20) == 0
    finally:
        if bot.returncode is None:
            await kill(bot)
    log = bot_log(config, tail=1_000_000)
    assert "feedbot stopped" in log
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
